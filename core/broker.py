"""The embedded broker: kombu's filesystem transport, made safe against torn files.

Stock kombu writes a message file in place (open, write) and a worker may pick it up
before the bytes are all there; reading it raised `JSONDecodeError`, which Celery
treats as an unrecoverable connection error: the worker stopped and every later job
stayed queued. Here a message is written under a name the queue ignores and renamed
into place (a rename is atomic on one file system), and a file that still cannot be
read is moved to `broken/` beside the queue, logged, and skipped, so one bad file never
stops the worker. Settings select this class with `CELERY_BROKER_TRANSPORT`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger("segmenta.broker")

# A file younger than this that cannot be read may still be written by a process
# using the stock transport (one started before an upgrade): left for a later poll.
YOUNG_SECONDS = 5.0


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: `_get` and `_size` match "<anything>.<queue>.msg" after the
        # first dot, which this name never does.
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        queue_find = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != queue_find:
                continue
            folder = self.processed_folder if self.store_processed else tempfile.gettempdir()
            try:
                shutil.move(os.path.join(self.data_folder_in, filename), folder)
            except OSError:
                continue  # taken by another worker in the meantime
            path = os.path.join(folder, filename)
            try:
                with open(path, "rb") as f:
                    payload = f.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {path!r} from queue.") from exc
            try:
                message = loads(bytes_to_str(payload))
                if not isinstance(message, dict):
                    raise ValueError("not a message object")
            except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                self._set_aside(path, filename)
                continue
            if not self.store_processed:
                os.remove(path)
            return message
        raise filesystem.Empty()

    def _set_aside(self, path: str, filename: str) -> None:
        age = time.time() - os.path.getmtime(path)
        if age < YOUNG_SECONDS:
            shutil.move(path, os.path.join(self.data_folder_in, filename))
            return
        broken = Path(self.data_folder_in).parent / "broken"
        broken.mkdir(parents=True, exist_ok=True)
        shutil.move(path, broken / filename)
        log.error(
            "broker.message_unreadable file=%s bytes=%s moved_to=%s",
            filename,
            os.path.getsize(broken / filename),
            broken,
        )


class Transport(filesystem.Transport):
    Channel = Channel
