"""The forms of an HTML page as a browser sees them: action, method, inputs and named submit buttons."""

from html.parser import HTMLParser
from typing import Any, Protocol

SIGN_OUT_PATH = "/oauth/logout"


class Page(Protocol):
    """An answer of either transport (Django's test response or httpx's)."""

    status_code: int
    content: bytes


class _Forms(HTMLParser):
    """Every <form> of a page: its action and method, its inputs and its named submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({**attributes, "inputs": {}, "buttons": []})
        elif self.forms and tag == "input" and attributes.get("name"):
            self.forms[-1]["inputs"][attributes["name"]] = attributes.get("value", "")
        elif self.forms and tag == "button":
            self.forms[-1]["buttons"].append((attributes.get("name", ""), attributes.get("value", "")))


def page_forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def page_form(answer: Page, what: str) -> dict[str, Any]:
    """The page's one POST form, beside the consent page's sign-out button ("Not you?")."""
    text = answer.content.decode(errors="replace")
    forms = [
        form
        for form in page_forms(text)
        if form.get("method", "get").lower() == "post" and form.get("action") != SIGN_OUT_PATH
    ]
    assert answer.status_code == 200 and len(forms) == 1, (
        f"expected the {what} page, got {answer.status_code}: {text[:500]}"
    )
    return forms[0]
