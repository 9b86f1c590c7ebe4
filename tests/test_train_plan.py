"""The release train's pure decisions: the graph's problems, departures, revert order."""

from __future__ import annotations

from pipeline.decisions.train import dependency_order, find_cycle, graph_problems, ready_to_depart, revert_order

DIAMOND = {"db": [], "shoot": ["db"], "upload": ["db"], "gallery": ["shoot", "upload"]}


def test_a_cycle_is_named_as_the_path_that_closes_it():
    assert find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}) == ["a", "c", "b", "a"]
    assert graph_problems({"a": ["a"]}) == ["depends_on has a cycle: a -> a"]
    assert find_cycle(DIAMOND) is None


def test_a_dependency_outside_the_train_is_named():
    assert graph_problems({"gallery": ["shoot"]}) == ["gallery depends on 'shoot', which is not in the train"]


def test_members_come_after_what_they_depend_on_and_otherwise_keep_the_trains_order():
    assert dependency_order({"gallery": ["shoot"], "shoot": [], "billing": []}) == ["shoot", "gallery", "billing"]
    order = dependency_order(DIAMOND)
    assert order.index("db") < order.index("shoot") < order.index("gallery")
    assert order.index("upload") < order.index("gallery")


def test_departures_wait_for_promoted_dependencies_and_respect_max_parallel():
    assert ready_to_depart(DIAMOND, promoted=set(), departed=set(), running=0, max_parallel=2) == ["db"]
    after_db = ready_to_depart(DIAMOND, promoted={"db"}, departed={"db"}, running=0, max_parallel=2)
    assert after_db == ["shoot", "upload"]
    assert ready_to_depart(DIAMOND, promoted={"db"}, departed={"db"}, running=0, max_parallel=1) == ["shoot"]
    assert ready_to_depart(DIAMOND, promoted={"db"}, departed={"db", "shoot"}, running=1, max_parallel=1) == []
    assert ready_to_depart(DIAMOND, promoted={"db", "shoot"}, departed={"db", "shoot", "upload"}, running=1, max_parallel=2) == []


def test_promoted_members_are_reverted_dependents_first():
    assert revert_order(DIAMOND, promoted=["db", "shoot", "upload"]) == ["upload", "shoot", "db"]
    assert revert_order({"shoot": [], "gallery": ["shoot"]}, promoted=["shoot", "gallery"]) == ["gallery", "shoot"]
