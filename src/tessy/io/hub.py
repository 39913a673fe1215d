"""`tessy export --push-to-hub ORG/NAME`: upload the data (as Parquet) and its card to the hub.

The token is huggingface_hub's usual one (`HF_TOKEN`, or a `huggingface-cli login`), read by
the library and never written anywhere. `HF_ENDPOINT` points at another hub (the tests use a
local stand-in). A failed upload leaves the local export as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from tessy.errors import TessyError
from tessy.io.export import DATA_PATH


def push(records: list[dict[str, Any]], card: str | None, repo_id: str, private: bool,
         parquet: Path | None = None) -> str:
    """Create (or reuse) the dataset repo and commit the Parquet data and README.md in one
    commit; the commit's URL. Raises a one-line TessyError when the hub refuses."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)  # read now, not at import
    with tempfile.TemporaryDirectory() as scratch:
        if parquet is None:  # a `datasets` dir export: the hub gets Parquet all the same
            import pyarrow as pa
            import pyarrow.parquet as pq

            parquet = Path(scratch) / "data.parquet"
            pq.write_table(pa.Table.from_pylist(records), parquet)
        operations = [CommitOperationAdd(DATA_PATH, str(parquet))]
        if card is not None:
            operations.append(CommitOperationAdd("README.md", card.encode("utf-8")))
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            info = api.create_commit(repo_id, operations, repo_type="dataset",
                                     commit_message="Upload tessy export")
        except Exception as exc:  # the hub client raises HTTP, transport and value errors
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TessyError(f"--push-to-hub {repo_id}: upload failed ({reason}); the local "
                             "export is intact") from exc
    return str(info.commit_url)
