"""Workflows of the versioning and continue-as-new tests on the real broker: two versions
of "Upgraded" (an engine runs one, `--upgraded v1|v2`) and "Countdown" (continues as new)."""

from __future__ import annotations

from infinitic_streams import Channel, Workflow, service, workflow


@service("Steps")
class Adder:
    def add(self, x: int, y: int) -> int: ...  # implemented by tests.apps.workflows.StepsImpl


@workflow("Upgraded")
class UpgradedV1(Workflow):
    go = Channel(int)

    def run(self, x: int) -> str:
        steps = self.new_service(Adder)
        a = steps.add(x, 1)
        b = steps.add(a, 100)
        self.go.receive().result()
        return f"old {b}"


@workflow("Upgraded")
class UpgradedV2(Workflow):
    go = Channel(int)

    def run(self, x: int) -> str:
        steps = self.new_service(Adder)
        a = steps.add(x, 1)
        if self.patched("bigger-bonus"):
            b, path = steps.add(a, 1000), "new"
        else:
            b, path = steps.add(a, 100), "old"
        self.go.receive().result()
        return f"{path} {b}"


@workflow("Countdown")
class Countdown(Workflow):
    """`n` more runs, a task each; the total of n + (n - 1) + ... + 1."""

    def run(self, n: int, total: int) -> int:
        if n == 0:
            return total
        total = self.new_service(Adder).add(total, n)
        self.continue_as_new(n - 1, total)


UPGRADED = {"v1": UpgradedV1, "v2": UpgradedV2}
