"""The label store: the only package that holds SQL and writes to the database.

Every function takes a Session and leaves committing to the caller (`with sessionmaker.begin() as session:`), so a
caller can group several writes into one transaction.

base.py          engine from DATABASE_URL (default SQLite var/mrelens.db; foreign keys on, WAL)
models.py        the schema (SQLAlchemy 2.0 typed ORM); migrations/ holds its Alembic history
schema.py        open_database(url, intent): "read"/"write" need an existing store at the latest schema (an older
                 one is refused, never upgraded), "create" builds one; upgrade_store (SQLite backed up first); a
                 database with other tables is never altered; every store is built and upgraded by migrations
errors.py        LabelStoreError (a request the store refuses) and ConcurrentEditError (a lost optimistic lock)
datasets.py      datasets, posts and pairs as imported: creation, look-ups, counts, check_filter_names
annotations.py   review decisions: append-only history, record/undo, current state; join_current_annotation is
                 the one "current annotation" join
review_queue.py  QueueFilter, QueueItem, review_queue (filters, sort orders), progress, pair_detail, filter values
provenance.py    model versions (register, find, activate) and what they produced: predictions, crops,
                 explanations, evaluation runs, each naming the version, method and settings
curation.py      curated training records: review decisions applied to a dataset's source records
model_compare.py two model versions' stored predictions on the same pairs
jobs.py          the background jobs' rows: queue, progress, cancel, outcome
roles.py         who may change what (admin / reviewer); require_admin; identities compared with RFC 8265
validate.py      the checks every record passes before it enters the store (names, labels, sizes, identities)
redact.py        URL passwords masked, names made printable, CSV cells neutralised
io.py            import of MNRE folders and single posts (images through model.images, limits in InputLimits);
                 export_labels: MNRE txt and CSV here, JSONL and Parquet through hf_dataset
export_rows.py   the rows every export writes (ExportFilter, curated_rows: each pair's label in effect) and the
                 atomic writes the writers share (every write through model.safe_write)
hf_dataset.py    curated labels as a Hugging Face dataset (typed features, one file per split, card)
label_studio.py  Label Studio, both ways: the public entry to label_studio_format.py (the labeling config and
                 result names), label_studio_export.py (tasks out) and label_studio_import.py (annotations back in)
agreement.py     Cohen's kappa and Krippendorff's alpha
cli.py           python -m db init | import | import-post | export | agreement | upgrade (user errors: exit 2)
"""
