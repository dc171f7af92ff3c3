"""Reference renders of chat templates with real Jinja2, set up as Hugging Face transformers'
apply_chat_template sets it up (the setup recorded in ../shared/fixtures/chat-templates/renders.json):
ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks, loopcontrols), tojson = json.dumps(
ensure_ascii=False), raise_exception, strftime_now at a fixed date, and transformers' {% generation %}
block (which only marks text). Used by tests/reference/test_chat_templates.cpp where Jinja2 is
installed (Debian: python3-jinja2); our library never runs a template, this script is the reference.

Usage: render_chat_jinja.py CASES.json OUT.json  ->  writes to OUT.json a JSON list, one
{"ok": bool, "text" | "error"} per case. CASES.json is a list of {"template": path, "messages": [{"role", "content"}...],
"add_generation_prompt": bool, "bos_token": str, "eos_token": str, "date": "DD Mon YYYY",
"enable_thinking": bool (optional)}.
"""
import json
import sys
from datetime import datetime

from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(Extension):
    """{% generation %}...{% endgeneration %}: renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


class TemplateRaised(Exception):
    pass


def raise_exception(message):
    raise TemplateRaised(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def render(case, cache):
    path = case["template"]
    if path not in cache:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[GenerationBlock, loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        with open(path, encoding="utf-8") as f:
            cache[path] = env.from_string(f.read())
    date = datetime.strptime(case.get("date", "26 Jul 2024"), "%d %b %Y")
    variables = dict(messages=case["messages"], add_generation_prompt=case.get("add_generation_prompt", True),
                     tools=None, documents=None, bos_token=case.get("bos_token", ""),
                     eos_token=case.get("eos_token", ""), strftime_now=lambda fmt: date.strftime(fmt),
                     date_string=date.strftime("%d %b %Y"))
    if case.get("enable_thinking") is not None:
        variables["enable_thinking"] = case["enable_thinking"]
    try:
        return {"ok": True, "text": cache[path].render(**variables)}
    except Exception as e:  # raise_exception, or Jinja failing (undefined, type errors)
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    cache = {}
    results = [render(c, cache) for c in cases]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
