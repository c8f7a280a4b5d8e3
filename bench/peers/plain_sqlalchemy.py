"""What a team writes without a key service: FastAPI + SQLAlchemy, one SELECT per request.

The presented key is hashed with SHA-256 and looked up by that hash (unique index) among
10,000 keys. `python -m bench.peers.plain_sqlalchemy` creates the database and prints a key.
"""

import hashlib
import os
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

KEY_COUNT = 10_000
engine = create_engine(
    f"sqlite:///{os.environ.get('BENCH_PLAIN_DB', 'plain-bench.sqlite3')}",
    connect_args={"check_same_thread": False},
)
make_session = sessionmaker(engine)


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(64))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def session() -> Iterator[Session]:
    with make_session() as s:
        yield s


def require_key(
    x_api_key: Annotated[str, Header()], db: Annotated[Session, Depends(session)]
) -> ApiKeyRow:
    row = db.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(x_api_key)))
    if row is None:
        raise HTTPException(401, "Invalid API key")
    return row


app = FastAPI()


@app.get("/ok")
def ok(key: Annotated[ApiKeyRow, Depends(require_key)]) -> dict[str, bool]:
    return {"ok": True}


def create_keys() -> str:
    """Fill a fresh database with KEY_COUNT keys and return one from the middle."""
    Base.metadata.create_all(engine)
    keys = [secrets.token_urlsafe(32) for _ in range(KEY_COUNT)]
    with make_session.begin() as s:
        s.add_all(ApiKeyRow(key_hash=hash_key(k), owner=f"owner-{i}") for i, k in enumerate(keys))
    return keys[KEY_COUNT // 2]


if __name__ == "__main__":
    print(create_keys())
