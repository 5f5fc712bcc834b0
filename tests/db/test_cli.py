import pandas as pd
from PIL import Image

from db.cli import main


def test_cli_imports_exports_and_reports_user_errors_without_traceback(tmp_path, mini_mnre, capsys):
    url = ["--database-url", f"sqlite:///{tmp_path / 'cli.db'}"]
    assert main([*url, "init"]) == 0
    assert main([*url, "upgrade"]) == 0
    assert main([*url, "import", str(mini_mnre), "--split", "train"]) == 0
    assert "5 pairs added" in capsys.readouterr().out
    assert main([*url, "import", str(mini_mnre)]) == 0
    assert "2 pairs added, 5 already present" in capsys.readouterr().out

    image = tmp_path / "post.png"
    Image.new("RGB", (10, 10)).save(image)
    args = [
        "import-post",
        "--text",
        "Obama meets Merkel",
        "--head",
        "0",
        "1",
        "--tail",
        "2",
        "3",
        "--image",
        str(image),
    ]
    assert main([*url, *args]) == 0
    assert main([*url, *args]) == 0
    assert "already present" in capsys.readouterr().out

    out = tmp_path / "val.parquet"
    assert main([*url, "export", "--format", "parquet", "--out", str(out), "--split", "val"]) == 0
    assert len(pd.read_parquet(out)) == 2
    assert main([*url, "agreement"]) == 0
    capsys.readouterr()

    assert main([*url, "import", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ours_rel2id.json: file not found" in err and "Traceback" not in err
    assert main([*url, "import-post", "--text", "a b", "--head", "0", "1", "--tail", "1", "5"]) == 2
    assert "field 'tail'" in capsys.readouterr().err
    assert main(["--database-url", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}", "init"]) == 0
    assert main(["--database-url", "postgresql+psycopg://nobody:x@127.0.0.1:1/none", "upgrade"]) == 2
    assert "cannot use the database" in capsys.readouterr().err
