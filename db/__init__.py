"""The label store: the only package that writes to the database.

base.py      engine from DATABASE_URL (default SQLite var/mrelens.db; foreign keys on, WAL)
models.py    the schema (SQLAlchemy 2.0 typed ORM); migrations/ holds its Alembic history
schema.py    open_database(url) / upgrade_database(url): every database is built and upgraded by migrations
queries.py   every write (annotations, model versions, predictions, crops, explanations, evaluation runs)
             and the reads the app needs (review queue, progress, pair detail, curated training records)
io.py        import of MNRE folders and single posts; export to MNRE txt, JSONL, CSV, Parquet
agreement.py Cohen's kappa and Krippendorff's alpha
cli.py       python -m db import | import-post | export | agreement | upgrade
"""
