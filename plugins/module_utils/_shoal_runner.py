# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""The shared runner of the shoal.swarm modules (after community.docker's ``common_api`` + ``util``).

A module is a ``ShoalTask`` subclass: its ``argument_spec`` and the ``AnsibleModule`` rules
(``required_if``, ``required_together``, ``required_by``, ``mutually_exclusive``, ...), the
options that belong to one ``state`` only, numeric ``bounds``, a ``validate`` for what a spec
cannot say, and a compare-then-act ``run``. ``run_task`` builds the AnsibleModule with the
common options, checks, runs, and turns ``ParamError`` and ``ShoalAPIError`` into ``fail_json``.
The task records what it does (``record_state``, ``record``) and ``result`` returns the keys every
module returns: ``changed``, ``actions``, ``changes`` and ``diff``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn, TypeVar

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (
    ShoalAPIError,
    ShoalClient,
    common_argument_spec,
    retry_on_conflict,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_diff import Comparison

T = TypeVar("T")


class ParamError(ValueError):
    """A module argument that cannot be used; nothing has been touched yet."""


def given_options(params: Mapping[str, Any], spec: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    """The options of ``names`` the user set (a value other than the option's default)."""
    return [n for n in names if params.get(n) is not None and params.get(n) != spec[n].get("default")]


def check_state_options(params: Mapping[str, Any], spec: Mapping[str, Any], by_state: Mapping[str, Any]) -> None:
    """``by_state`` maps a state to the options that only apply to it; giving them with another fails."""
    state = params.get("state")
    for only_in, names in by_state.items():
        given = given_options(params, spec, tuple(names)) if state != only_in else []
        if given:
            raise ParamError(f"state={state}: these options apply to state={only_in} only: {', '.join(given)}")


def _values(params: Any, path: list[str]) -> list[Any]:
    """The values at a dotted path; a list of dictionaries on the way contributes each element's value."""
    if isinstance(params, list):
        return [v for item in params for v in _values(item, path)]
    if not path:
        return [params]
    if not isinstance(params, Mapping) or params.get(path[0]) is None:
        return []
    return _values(params[path[0]], path[1:])


def check_bounds(params: Mapping[str, Any], bounds: Mapping[str, tuple[float | None, float | None]]) -> None:
    """Every number at a (dotted) option path within its (low, high); None is no bound."""
    for name, (low, high) in bounds.items():
        for value in _values(params, name.split(".")):
            if (low is None or value >= low) and (high is None or value <= high):
                continue
            if high is None:
                rule = "0 or more" if low == 0 else f"at least {low:g}"
            elif low is None:
                rule = f"at most {high:g}"
            else:
                rule = f"between {low:g} and {high:g}"
            raise ParamError(f"{name} must be {rule}, not {value}")


class ShoalTask:
    """One run of a module against the shoal agent of the managed host."""

    # the module's own options (the common ones, socket_path and timeout, are added)
    argument_spec: ClassVar[Callable[[], dict[str, Any]]]
    # AnsibleModule's own checks: required_if, required_together, required_by, mutually_exclusive, ...
    rules: ClassVar[dict[str, Any]] = {}
    # state -> options that apply to that state only
    state_options: ClassVar[dict[str, tuple[str, ...]]] = {}
    # (dotted) option -> (lowest, highest) allowed number
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params: dict[str, Any] = module.params
        self.check_mode: bool = module.check_mode
        self.api = ShoalClient(module.params["socket_path"], module.params["timeout"])
        self.actions: list[str] = []
        self.changes: list[str] = []
        self.diff: dict[str, Any] = {"before": {}, "after": {}}

    # ---- hooks
    def validate(self) -> None:
        """Checks the argument spec cannot express; raise ParamError. Nothing has been touched yet."""

    def run(self) -> dict[str, Any]:
        raise NotImplementedError

    # ---- outcome
    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def fail(self, msg: str, **extra: Any) -> NoReturn:
        """Fail, saying what was already done (``changed`` only counts what was really done)."""
        out: dict[str, Any] = {
            "changed": self.changed and not self.check_mode,
            "actions": self.actions,
            "changes": self.changes,
        }
        out.update(extra)
        self.module.fail_json(msg=msg, **out)
        raise AssertionError("fail_json returned")  # pragma: no cover

    def warn(self, message: str) -> None:
        self.module.warn(message)

    def record_state(self, action: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """A creation, removal, join or leave: the object's ``state`` changes."""
        self.actions.append(action)
        self.changes.append("state")
        self.diff = {"before": before, "after": after}

    def record(self, comparison: Comparison, actions: list[str]) -> None:
        """A comparison with what is in place (and the actions that apply it, when it differs)."""
        if self.diff["before"]:  # after a join: the spec change shows in the same diff
            if comparison.changed:
                self.diff["after"].update(comparison.after)
        else:
            self.diff = comparison.diff
        if comparison.changed:
            self.actions += actions
            self.changes += comparison.changes

    def result(self, **facts: Any) -> dict[str, Any]:
        return {"changed": self.changed, "actions": self.actions, "changes": self.changes, "diff": self.diff, **facts}

    # ---- compare, then act
    def converge(
        self,
        first: T,
        read_again: Callable[[], T],
        compare: Callable[[T], Comparison],
        write: Callable[[T, Comparison], None],
    ) -> tuple[Comparison, T]:
        """Compare what was read with what is wanted and, outside check mode, write the difference
        with the version read; a write that lost a race (409 out of sequence) reads and decides again."""
        reads = [first]

        def attempt() -> tuple[Comparison, T]:
            fresh = reads.pop() if reads else read_again()
            comparison = compare(fresh)
            if comparison.changed and not self.check_mode:
                write(fresh, comparison)
            return comparison, fresh

        return retry_on_conflict(attempt)


def run_task(task_class: type[ShoalTask]) -> None:
    """The whole of a module's ``main()``."""
    spec = {**task_class.argument_spec(), **common_argument_spec()}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **task_class.rules)
    task = task_class(module)
    try:
        check_state_options(module.params, spec, task_class.state_options)
        check_bounds(module.params, task_class.bounds)
        task.validate()
        result = task.run()
    except ParamError as exc:
        task.fail(str(exc))
    except ShoalAPIError as exc:
        task.fail(exc.message, status=exc.status)
    module.exit_json(**result)
