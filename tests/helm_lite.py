"""Render charts/pd-planner without the `helm` binary (no Debian or PyPI package ships it here).

A deliberately small subset of Helm's Go templates, the only constructs the chart uses, with
Helm's meaning, so that `helm template` renders the same manifests:
  {{ .Values.a.b }}  {{ .Release.Name }}  {{ .Release.Namespace }}  {{ .Chart.Version }}
  pipes: `| quote`, `| default X`, `| nindent N`, `| indent N`, `| toYaml`; `toYaml X` as the first stage
  `omit X "k1" "k2"` as the first stage: the map X without those keys (Sprig's omit)
  `values X` as the first stage: the list of the map X's values (Sprig's values, in no set order: follow it with
  `| sortAlpha`); pipes `| uniq` (Sprig: the list without repeats) and `| sortAlpha` (Sprig: the strings sorted)
  `eq A B` as the first stage: Go's eq of two values of one basic kind (string, integer, bool; any other pair is an
  error, as Go's "incompatible types for comparison")
  `dig "k1" "k2" DEFAULT MAP` as the first stage: Sprig's dig, MAP's k1.k2, DEFAULT where a key is missing
  {{- if X }} ... {{- else }} ... {{- end }}   (X a value; Helm truthiness: empty/0/false/nil are false)
  {{- range $k, $v := MAP }} ... {{- end }}: the body once per entry, keys in sorted order (Go's order for maps);
  nothing for a missing value (Go: an invalid value ranges over nothing); `$k`, `$v` and `$.Values...` as terms
  `has NEEDLE LIST` as the first stage: Sprig's has (false for a missing list)
  `printf "FORMAT" ARGS...` as the first stage: Go's printf with the verbs %s and %q only
  {{ fail "message" }}, or `| fail` as the last pipe: rendering stops with TemplateError(message), as Helm's `fail`
  stops `helm template`
  `{{-` trims the whitespace before the action, `-}}` the whitespace after it
Values render as Go does: booleans lower case, nil as "<no value>" (an error here: a template
that would print it is a chart bug). toYaml sorts keys like sigs.k8s.io/yaml. Anything else raises
TemplateError naming the file, so a construct outside the subset cannot pass silently.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class TemplateError(ValueError):
    pass


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _truthy(v: Any) -> bool:
    return not (v is None or v is False or v == 0 or v == "" or v == {} or v == [])


def _to_yaml(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n").removesuffix("\n...")


def _str(v: Any, where: str) -> str:
    if v is None:
        raise TemplateError(f"{where}: prints a missing value (<no value>)")
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Renderer:
    def __init__(self, chart: Path, values: dict[str, Any] | None = None, release: str = "pd-planner", namespace: str = "llm-d"):
        self.chart = chart
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        self.ctx = {
            "Values": _merge(yaml.safe_load((chart / "values.yaml").read_text()) or {}, values or {}),
            "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
            "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")},
        }
        self.vars: dict[str, Any] = {}  # $k, $v of the ranges being rendered

    # ---------------------------------------------------------------- expressions
    def _path(self, ref: str, where: str) -> Any:
        if ref.startswith("$."):  # the root context inside a range
            ref = ref[1:]
        v: Any = self.ctx
        if ref.startswith("$") and not ref.startswith("$."):  # $v or $v.field
            name, _, ref = ref.partition(".")
            if name not in self.vars:
                raise TemplateError(f"{where}: undefined variable {name}")
            v, ref = self.vars[name], "." + ref if ref else ""
        elif not ref.startswith("."):
            raise TemplateError(f"{where}: unsupported term {ref!r}")
        for part in ref[1:].split(".") if ref else ():
            v = v.get(part) if isinstance(v, dict) else None
        return v

    def _term(self, tok: str, where: str) -> Any:
        if tok.startswith('"'):
            return shlex.split(tok)[0]
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if tok in ("true", "false"):
            return tok == "true"
        return self._path(tok, where)

    def eval(self, expr: str, where: str) -> Any:
        stages = [s.strip() for s in expr.split("|")]
        words = shlex.split(stages[0], posix=False)
        if words[0] == "toYaml":
            val: Any = _to_yaml(self._term(words[1], where))
        elif words[0] == "omit":  # Sprig's omit: a copy of the map without the named keys
            m = self._term(words[1], where)
            drop = {self._term(w, where) for w in words[2:]}
            val = {k: v for k, v in (m or {}).items() if k not in drop}
        elif words[0] == "values":  # Sprig's values: the map's values (Go's map order is random: sortAlpha them)
            val = list((self._term(words[1], where) or {}).values())
        elif words[0] == "fail":  # Helm's fail: rendering stops with the message (a values error the chart names)
            raise TemplateError(f"{where}: {self._term(words[1], where)}")
        elif words[0] == "eq":  # Go's eq (two operands): basic values of one kind, else an error as Go gives
            a, b = (self._term(w, where) for w in words[1:3])
            kinds = {type(x) for x in (a, b)}
            if len(words) != 3 or len(kinds) != 1 or not kinds <= {str, int, bool}:
                raise TemplateError(f"{where}: eq of {a!r} and {b!r}: incompatible types for comparison")
            val = a == b
        elif words[0] == "dig":  # Sprig's dig: keys..., default, map; the default where a key is missing
            *keys, default, m = (self._term(w, where) for w in words[1:])
            val = m
            for k in keys:
                if not isinstance(val, dict):
                    raise TemplateError(f"{where}: dig {keys}: {val!r} is not a map")
                if k not in val:
                    val = default
                    break
                val = val[k]
        elif words[0] == "has":  # Sprig's has: whether the list holds the value (a missing list holds none)
            needle, haystack = (self._term(w, where) for w in words[1:3])
            val = needle in (haystack or [])
        elif words[0] == "printf":  # Go's printf, verbs %s and %q only
            fmt, *args = (self._term(w, where) for w in words[1:])
            conv = iter(args)

            def verb(m: re.Match[str]) -> str:
                a = _str(next(conv), where)
                return '"' + a + '"' if m.group(1) == "q" else a
            val = re.sub(r"%([sq])", verb, fmt)
        elif words[0] == "not":
            val = not _truthy(self._term(words[1], where))
        elif len(words) == 1:
            val = self._term(words[0], where)
        else:
            raise TemplateError(f"{where}: unsupported expression {stages[0]!r}")
        for st in stages[1:]:
            fn, *args = shlex.split(st, posix=False)
            if fn == "quote":
                val = '"' + _str(val, where).replace("\\", "\\\\").replace('"', '\\"') + '"'
            elif fn == "default":
                val = val if _truthy(val) else self._term(args[0], where)
            elif fn == "nindent":
                val = "\n" + "\n".join(" " * int(args[0]) + line if line else line for line in _str(val, where).split("\n"))
            elif fn == "indent":
                val = "\n".join(" " * int(args[0]) + line if line else line for line in _str(val, where).split("\n"))
            elif fn == "toYaml":
                val = _to_yaml(val)
            elif fn == "uniq":
                val = [v for i, v in enumerate(val) if v not in val[:i]]
            elif fn == "sortAlpha":
                val = sorted(_str(v, where) for v in val)
            elif fn == "fail":
                raise TemplateError(f"{where}: {_str(val, where)}")
            else:
                raise TemplateError(f"{where}: unsupported function {fn!r}")
        return val

    # ---------------------------------------------------------------- templates
    def render_text(self, text: str, where: str) -> str:
        parts: list[tuple[str, str]] = []  # ("text", s) | ("action", expr)
        pos = 0
        for m in ACTION.finditer(text):
            before = text[pos:m.start()]
            if m.group(1):
                before = before.rstrip(" \t\n")
            parts.append(("text", before))
            parts.append(("action", m.group(2)))
            pos = m.end()
            if m.group(3):
                rest = text[pos:]
                pos += len(rest) - len(rest.lstrip(" \t\n"))
        parts.append(("text", text[pos:]))
        return self._walk(parts, where)

    def _walk(self, parts: list[tuple[str, str]], where: str) -> str:
        out: list[str] = []
        stack: list[tuple[bool, bool]] = []  # (parent active, this branch active)
        active = True
        i = -1
        while i + 1 < len(parts):
            i += 1
            kind, s = parts[i]
            if kind == "text":
                if active:
                    out.append(s)
                continue
            if s.startswith("/*"):
                continue
            word = s.split(None, 1)
            if word[0] == "range" and active:
                body, i = self._block(parts, i, where)
                m = re.fullmatch(r"(\$\w+)\s*,\s*(\$\w+)\s*:=\s*(.+)", word[1])
                if not m:
                    raise TemplateError(f"{where}: unsupported range {word[1]!r} (only `range $k, $v := MAP`)")
                seq = self.eval(m.group(3), where)
                if seq is not None and not isinstance(seq, dict):
                    raise TemplateError(f"{where}: range over {seq!r}: only maps")
                saved = dict(self.vars)
                for k in sorted(seq or {}):
                    self.vars.update({m.group(1): k, m.group(2): seq[k]})
                    out.append(self._walk(body, where))
                self.vars = saved
                continue
            if word[0] == "range":  # inactive: skip its body whole
                _, i = self._block(parts, i, where)
                continue
            if word[0] == "if":
                stack.append((active, active and _truthy(self.eval(word[1], where))))
                active = stack[-1][1]
            elif word[0] == "else":
                parent, taken = stack[-1]
                stack[-1] = (parent, True)
                active = parent and not taken
            elif word[0] == "end":
                active = stack.pop()[0]
            elif active:
                out.append(_str(self.eval(s, where), where))
        if stack:
            raise TemplateError(f"{where}: unclosed if")
        return "".join(out)

    @staticmethod
    def _block(parts: list[tuple[str, str]], start: int, where: str) -> tuple[list[tuple[str, str]], int]:
        """The parts between the action at `start` and its `end` (nested ifs and ranges counted), and that end's index."""
        depth = 0
        for j in range(start + 1, len(parts)):
            kind, s = parts[j]
            if kind != "action" or s.startswith("/*"):
                continue
            w = s.split(None, 1)[0]
            if w in ("if", "range"):
                depth += 1
            elif w == "end":
                if depth == 0:
                    return parts[start + 1:j], j
                depth -= 1
        raise TemplateError(f"{where}: unclosed range")

    def render(self) -> dict[str, str]:
        return {p.name: self.render_text(p.read_text(), str(p)) for p in sorted((self.chart / "templates").glob("*.yaml"))}

    def manifests(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        for name, text in self.render().items():
            try:
                docs.extend(d for d in yaml.safe_load_all(text) if d)
            except yaml.YAMLError as exc:
                raise TemplateError(f"templates/{name} renders invalid YAML: {exc}\n{text}") from exc
        return docs
