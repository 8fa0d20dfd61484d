"""Read an offline wandb run file (``run-*.wandb``) back, for tests: no network, no wandb service.

The file is wandb's append-only record log (LevelDB log layout: a 7-byte header, then 32 KiB
blocks of records, each with a 7-byte header of CRC32, length and a FULL/FIRST/MIDDLE/LAST type)
whose payloads are ``wandb_internal_pb2.Record`` protobuf messages.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> Iterator[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a wandb run file")
    pos, pending = 7, b""
    while pos + HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER.size:  # block tail padding
            pos += left
            continue
        _, length, kind = HEADER.unpack_from(data, pos)
        if kind == 0:  # zero padding up to the next block
            pos += left
            continue
        payload = data[pos + HEADER.size : pos + HEADER.size + length]
        pos += HEADER.size + length
        if kind in (FIRST, MIDDLE):
            pending = payload if kind == FIRST else pending + payload
            continue
        message = wandb_internal_pb2.Record()
        message.ParseFromString(pending + payload if kind == LAST else payload)
        pending = b""
        yield message


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def history(path: str | Path) -> list[dict]:
    """Every ``wandb.log`` row of the run, in order."""
    return [
        {item_key(i): json.loads(i.value_json) for i in r.history.item}
        for r in records(path)
        if r.WhichOneof("record_type") == "history"
    ]


def run_info(path: str | Path) -> dict:
    """Id, name, group, job type, tags and the merged config of the run."""
    info: dict = {"config": {}}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            info.update(id=r.run.run_id, name=r.run.display_name, group=r.run.run_group, job_type=r.run.job_type,
                        tags=list(r.run.tags))
            info["config"].update({item_key(i): json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            info["config"].update({item_key(i): json.loads(i.value_json) for i in r.config.update})
    return info
