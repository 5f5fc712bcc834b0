"""The review panel is an st.fragment: a decision key reruns the panel only (the title, the sidebar and the
navigation are not redrawn). AppTest reruns the whole script on every click, fragment or not, so this reads the
page's code; tests/app/test_browser_review_keys.py times the keys in a browser and benchmarks/app.md has the figures."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.app.conftest import no_exceptions

REVIEW = "views/review.py"
PAGE = Path(__file__).resolve().parents[2] / "app" / "views" / "review.py"


def _is_fragment(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        ast.unparse(d).split("(")[0] == "st.fragment" for d in node.decorator_list
    )


def _widget_keys(node: ast.AST) -> set[str]:
    return {
        ast.unparse(k.value).strip("'\"f")
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        for k in call.keywords
        if k.arg == "key"
    }


PANELS = PAGE.parents[1] / "ui" / "review_panels.py"


def _panel_calls(node: ast.AST) -> set[str]:
    """The app.ui.review_panels functions a node calls (as `panels.<name>(...)`)."""
    return {
        call.func.attr
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and ast.unparse(call.func.value) == "panels"
    }


def test_every_decision_widget_of_review_is_inside_one_fragment():
    module = ast.parse(PAGE.read_text())
    fragments = [node for node in module.body if _is_fragment(node)]
    assert len(fragments) == 1, "the review panel is one @st.fragment function"
    # the page draws its parts through app.ui.review_panels: a widget of a part the fragment calls is inside it
    panel_functions = {
        node.name: node for node in ast.parse(PANELS.read_text()).body if isinstance(node, ast.FunctionDef)
    }
    called = _panel_calls(fragments[0])
    assert called <= set(panel_functions), called - set(panel_functions)
    inside = _widget_keys(fragments[0]).union(*(_widget_keys(panel_functions[name]) for name in called))
    for key in (
        "review_accept",
        "review_reject",
        "review_skip",
        "review_next",
        "review_prev",
        "review_undo",
        "review_top",
        "review_correct",
    ):
        assert key in inside, key
    outside = [node for node in module.body if not isinstance(node, ast.FunctionDef)]
    assert not set().union(*(_widget_keys(node) for node in outside)), (
        "no widget outside the panel but the sidebar's"
    )
    assert not set().union(*(_panel_calls(node) for node in outside)), "no part of the panel drawn outside it"


def test_the_fragment_page_still_decides_and_moves_on(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    first = at.session_state["review_shown"][0]
    at.button(key="review_skip").click().run()
    no_exceptions(at)
    assert at.session_state["review_shown"][0] != first
