"""The label store: the only package that writes to the database.

base.py      engine from DATABASE_URL (default SQLite var/mrelens.db; foreign keys on, WAL)
models.py    the schema (SQLAlchemy 2.0 typed ORM); migrations/ holds its Alembic history
schema.py    open_database(url, intent): "read"/"write" need an existing store, "create" builds one; a database with
             other tables is never altered; every store is built and upgraded by migrations
queries.py   every write (annotations, model versions, predictions, crops, explanations, evaluation runs)
             and the reads the app needs (review queue, progress, pair detail, curated training records);
             join_current_annotation is the one "current annotation" join
io.py        import of MNRE folders and single posts (images through model.images, limits in InputLimits);
             export to MNRE txt, JSONL, CSV, Parquet (targets checked: no FIFO, device or source folder replaced)
agreement.py Cohen's kappa and Krippendorff's alpha
cli.py       python -m db init | import | import-post | export | agreement | upgrade (user errors: exit 2)
"""
