"""Release-train decisions, pure: the dependency graph's problems (a cycle, named), which
members may depart now, and the order in which promoted members are reverted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def graph_problems(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Why `depends_on` (member -> the members it needs promoted first) is not a valid
    train: a dependency outside the train, a member depending on itself, a cycle."""
    problems = [
        f"{member} depends on {needed!r}, which is not in the train"
        for member, needs in depends_on.items()
        for needed in needs
        if needed not in depends_on
    ]
    cycle = find_cycle(depends_on)
    if cycle:
        problems.append("depends_on has a cycle: " + " -> ".join(cycle))
    return problems


def find_cycle(depends_on: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as the path that closes it (`a -> b -> a`), or None. Depth-first, in the
    members' order, so the same train always names the same cycle."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(member: str) -> list[str] | None:
        if member in visiting:
            return [*visiting[visiting.index(member):], member]
        if member in done or member not in depends_on:
            return None
        visiting.append(member)
        for needed in depends_on[member]:
            cycle = visit(needed)
            if cycle:
                return cycle
        visiting.pop()
        done.add(member)
        return None

    for member in depends_on:
        cycle = visit(member)
        if cycle:
            return cycle
    return None


def dependency_order(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Every member after the members it depends on, otherwise in the train's order
    (the graph must have no cycle)."""
    ordered: list[str] = []

    def place(member: str) -> None:
        if member in ordered:
            return
        for needed in depends_on[member]:
            place(needed)
        ordered.append(member)

    for member in depends_on:
        place(member)
    return ordered


def ready_to_depart(
    depends_on: Mapping[str, Sequence[str]], promoted: set[str], departed: set[str], running: int, max_parallel: int
) -> list[str]:
    """Members that may start now: not started yet, every dependency promoted, within
    `max_parallel` members running at once; in dependency order."""
    room = max(0, max_parallel - running)
    ready = [
        member
        for member in dependency_order(depends_on)
        if member not in departed and all(needed in promoted for needed in depends_on[member])
    ]
    return ready[:room]


def revert_order(depends_on: Mapping[str, Sequence[str]], promoted: Sequence[str]) -> list[str]:
    """The promoted members to revert, dependents before what they depend on (a member's
    new version may need its dependencies' new API until it is reverted itself)."""
    return [member for member in reversed(dependency_order(depends_on)) if member in promoted]
