"""The image workflow of Infinitic's README, in Python, on Kafka.

Download an image; for each size, a branch resizes it then uploads the result; then save the
URLs for the user. `ImageWorkflow.run` uses 3 sizes, `ImageWorkflow.all_sizes` every size from
10 to 200 (191 branches). The image service fakes the network: it makes bytes up.

    make demo                 # runs both on Kafka: see examples/demo.py
"""

from __future__ import annotations

import hashlib

from infinitic_streams import (
    RetryPolicy,
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
