"""backcheck in a course's tests: ``assert_gradients`` for any test runner, and a pytest plugin.

    def test_backprop():                          # pytest, otter-grader, nbgrader, GitHub Classroom
        backcheck.assert_gradients("assignment.yaml")

    def test_backprop(backcheck_check):           # the same as a pytest fixture
        backcheck_check("assignment.yaml")

    $ pytest --backcheck assignment.yaml other.yaml   # a test per layer of each config

``assert_gradients`` needs no pytest. The plugin is registered with pytest's ``pytest11`` entry
point, so pytest loads this module in every run: it imports nothing heavy until a check runs.
"""

from __future__ import annotations

import io
from pathlib import Path

try:  # the plugin half needs pytest; assert_gradients does not
    import pytest
except ImportError:  # pragma: no cover - exercised only where pytest is not installed
    pytest = None

REPORT_WIDTH = 80  # columns of the text report in an assertion message


class GradientCheckFailed(AssertionError):
    """A check that did not end in exit 0; the message is the text report, ``result`` the CheckResult."""

    def __init__(self, result):
        super().__init__(report_text(result))
        self.result = result


def assert_gradients(config, *, exhaustive: bool = False, jobs: int = 1, show_output: bool = False):
    """Check the code that ``config`` (a YAML path, relative to the current folder) points at, as
    ``backcheck verify`` does, and return the CheckResult. Raises GradientCheckFailed, an
    AssertionError whose message is the plain text report (80 columns), unless every gradient agrees:
    a wrong gradient, an inconclusive parameter, a config error or code that fails all raise."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    from backcheck.runner import Options, verify

    result = verify(str(config), Options(exhaustive=exhaustive, jobs=jobs, show_output=show_output))
    if not result.ok:
        raise GradientCheckFailed(result)
    return result


def report_text(result, width: int = REPORT_WIDTH) -> str:
    """The report ``backcheck verify --no-color`` prints, as a string ``width`` columns wide."""
    from backcheck import render

    console = render.console(no_color=True)
    console.file, console.width, console.record = io.StringIO(), width, True
    render.report(result, console)
    return "\n".join(line.rstrip() for line in console.export_text(styles=False).splitlines()).strip("\n")


# ---------------------------------------------------------------- the pytest plugin


def pytest_addoption(parser) -> None:
    group = parser.getgroup("backcheck", "backcheck: gradient checks of hand-written backpropagation")
    group.addoption("--backcheck", action="extend", nargs="+", default=[], metavar="CONFIG",
                    help="collect a test per layer of each backcheck config (YAML): passed when the layer's "
                         "gradients agree with finite differences and no finding blames it")


def pytest_configure(config) -> None:
    """The configs given to --backcheck are collected; without other paths on the command line they
    are all that is collected (``pytest --backcheck a.yaml`` runs a.yaml's layers, not the suite)."""
    configs = config.getoption("backcheck", default=None)
    if not configs:
        return
    config.stash[_CONFIGS] = {Path(c).resolve() for c in configs}
    source = getattr(config, "args_source", None)  # pytest >= 7.2; before, the paths given are kept
    given = source is None or source == pytest.Config.ArgsSource.ARGS
    config.args = ([a for a in config.args if a not in configs] if given else []) + list(configs)


def pytest_collect_file(file_path: Path, parent):
    configs = parent.config.stash.get(_CONFIGS, None)
    if configs and file_path.resolve() in configs:
        return ConfigFile.from_parent(parent, path=file_path)
    return None


if pytest is not None:
    _CONFIGS = pytest.StashKey[set]()

    class ConfigFile(pytest.File):
        """A backcheck config: one item per layer of its network, one check for them all (run when
        the first of them runs)."""

        def collect(self):
            from backcheck.errors import ConfigError
            from backcheck.spec import load_config

            self.result = None
            try:
                self.network = load_config(self.path, require_code=False).network
            except ConfigError as exc:  # the layers are unknown: one item says why
                self.network, self.error = None, exc
                yield LayerItem.from_parent(self, name="config", index=0)
                return
            for k in range(1, len(self.network.layers) + 1):
                yield LayerItem.from_parent(self, name=f"layer {k}: {self.network.label(k)}", index=k)

        def tests(self):
            """The check's LayerTests (the check runs once, sandboxed, as backcheck verify does)."""
            from backcheck.ci import layer_tests
            from backcheck.runner import Options, failed, verify

            if self.result is None:
                self.result = failed(str(self.path), self.path, self.error) if self.network is None else \
                    verify(str(self.path), Options())
            return layer_tests(self.result, self.network)

    class LayerItem(pytest.Item):
        """One layer of a config's network as a test."""

        def __init__(self, *, index: int, **kwargs):
            super().__init__(**kwargs)
            self.index = index

        def runtest(self) -> None:
            test = self.parent.tests()[max(self.index - 1, 0)]
            self.user_properties.append(("backcheck_status", test.status))
            if not test.passed:
                raise LayerFailed(test.output or test.status)

        def repr_failure(self, excinfo, style=None):
            if isinstance(excinfo.value, LayerFailed):
                return str(excinfo.value)
            return super().repr_failure(excinfo, style)

        def reportinfo(self):
            return self.path, None, f"{self.parent.path.name}: {self.name}"

    class LayerFailed(Exception):
        """A layer whose test did not pass; the message is what grade's tests say about it."""

    @pytest.fixture
    def backcheck_check(request):
        """``backcheck_check("assignment.yaml", **options)``: ``assert_gradients`` inside a test, with
        the verdict recorded in the test's user_properties (JUnit XML properties)."""

        def check(config, **options):
            __tracebackhide__ = True
            try:
                result = assert_gradients(config, **options)
            except GradientCheckFailed as exc:
                request.node.user_properties.append(("backcheck_exit_code", int(exc.result.exit_code)))
                raise
            request.node.user_properties.append(("backcheck_exit_code", int(result.exit_code)))
            return result

        return check
