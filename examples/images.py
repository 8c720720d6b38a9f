"""The image workflow of Infinitic's README, in Python, on Kafka.

Download an image; for each size, a branch resizes it then uploads the result; then save the
URLs for the user. `ImageWorkflow.run` uses 3 sizes, `ImageWorkflow.all_sizes` every size from
10 to 200 (191 branches). The image service fakes the network: it makes bytes up.

    python examples/images.py            # engine, workers and client in one process
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable

from infinitic_streams import (
    InfiniticClient,
    RetryPolicy,
    Worker,
    Workflow,
    all_of,
    service,
    task_context,
    workflow,
)


@service("ImageUtil", retry=RetryPolicy(max_attempts=3, initial_delay=0.5), timeout=30.0)
class ImageUtil:
    """The contract: what workflows may call. Bodies are not used."""

    def download(self, url: str) -> bytes: ...
    def resize(self, image: bytes, size: int) -> bytes: ...
    def upload(self, image: bytes) -> str: ...
    def save(self, email: str, urls: list[str]) -> None: ...


class ImageUtilImpl(ImageUtil):
    """What a worker runs. No network: the 'image' is made of hashed bytes."""

    def download(self, url: str) -> bytes:
        seed = hashlib.sha256(url.encode()).digest()
        return seed * 128  # 4 KiB

    def resize(self, image: bytes, size: int) -> bytes:
        return hashlib.sha256(image + size.to_bytes(4, "big")).digest() * max(1, size // 32)

    def upload(self, image: bytes) -> str:
        return f"https://images.example.com/{hashlib.sha256(image).hexdigest()[:16]}.png"

    def save(self, email: str, urls: list[str]) -> None:
        context = task_context()
        print(f"  saved {len(urls)} urls for {email} (task {context.task_id})", flush=True)


@workflow("ImageWorkflow")
class ImageWorkflow(Workflow):
    def run(self, email: str, url: str) -> list[str]:
        return self._resize_all(email, url, [64, 128, 256])

    def all_sizes(self, email: str, url: str) -> list[str]:
        return self._resize_all(email, url, list(range(10, 201)))

    def _resize_all(self, email: str, url: str, sizes: list[int]) -> list[str]:
        images = self.new_service(ImageUtil)
        image = images.download(url)
        branches = [self.branch(self.resize_and_upload, image, size) for size in sizes]
        urls = all_of(*branches).result()
        images.save(email, urls)
        return urls

    def resize_and_upload(self, image: bytes, size: int) -> str:
        images = self.new_service(ImageUtil)
        return images.upload(images.resize(image, size))


def main() -> None:
    bootstrap = os.environ.get("INFINITIC_KAFKA", "127.0.0.1:9092")
    kafka = {"bootstrap.servers": bootstrap}
    namespace = f"demo-{int(time.time())}"
    print(f"Kafka at {bootstrap}, namespace {namespace}: starting engine and image workers")
    with tempfile.TemporaryDirectory(prefix="infinitic-demo-") as state_dir:
        worker = Worker(
            kafka, namespace, services=[ImageUtilImpl()], workflows=[ImageWorkflow],
            state_dir=state_dir,
        ).start()  # fmt: skip
        try:
            with InfiniticClient(kafka, namespace) as client:
                for method in (ImageWorkflow.run, ImageWorkflow.all_sizes):
                    run(client, method)
        finally:
            worker.stop()
    print(
        "\nWhere to look next: the workflows and their histories above came from\n"
        "`handle.describe()` and `handle.history()`; with your own infinitic.toml, run\n"
        "`infinitic-streams dev`, then `infinitic-streams dispatch`, `describe <id>` and\n"
        "`history <id>` (see README.md)."
    )


def run(client: InfiniticClient, method: Callable[..., list[str]]) -> None:
    name = f"ImageWorkflow.{method.__name__}"
    started = time.monotonic()
    handle = client.dispatch(method, "me@example.com", "https://example.com/cat.png")
    urls = handle.result(timeout=120)
    seconds = time.monotonic() - started
    print(f"\n{name}: {len(urls)} images resized and saved in {seconds * 1000:.0f} ms")
    for url in urls[:3]:
        print(f"  {url}")
    if len(urls) > 3:
        print(f"  ... and {len(urls) - 3} more")
    info = handle.describe()
    history = handle.history()
    tasks = sum(1 for event in history if event["event"] == "TaskSucceeded")
    print(f"  describe: id {info.id}, {info.status}, {tasks} tasks, {len(history)} events")


if __name__ == "__main__":
    main()
