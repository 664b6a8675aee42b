"""The README's shell examples as a reader runs them: parsed, run with bash, and their answers
compared with what the README shows. Used by `test_readme_examples.py`.

Reading the README
    An example is a ```sh block with `$ ` command lines; the lines after a command, up to the
    next `$ ` line, are what it shows. A command goes on over lines while it ends in `\\`, has
    a quote open, or has a here-document (`<<'EOF'`) whose closing line has not come yet (a
    Python script fed to `.venv/bin/python -`). A ```sh block with no `$ ` line lists commands
    without their output (`make run`); the test names each of those as excluded, with its
    reason.

What `...` means
    Outside a string, `...` stands for elided members of an object (`{"id": "x", ...}`,
    `{...}`) or elements of an array (`[...]`). Inside a string it stands for elided text, and
    so do the runs of letters and digits written next to it (`"5d0c..."` is some id, its
    `5d0c` only a sample; `"whsec_...k3Zw"` a masked secret, its last four only a sample);
    any other digits in such a string stand for some digits (`ev_20261121_9f0c...`: the date
    varies), the rest of it is literal (`qcos_9b1e..._...` checks the `qcos_<id>_<secret>`
    form).

What is compared (`Matcher`)
    - Keys: every key shown must be there; an object without `...` must have no other keys.
    - Arrays: without `...` the same length, element by element; with `...` the elements shown
      must appear in that order among the others.
    - Strings: literal, except with `...` (above), ISO 8601 date-times (any date-time) and
      dates (any date; but the price book's dates, `FIXED_DATES`, are literal).
    - Numbers: literal, except those that measure a run or a moment and vary from one run to
      the next: the values of a counts-like object (`VARYING_OBJECTS`, by its key), and the
      keys in `VARYING_NUMBERS`. A varying number must still be a number.
    - `true`, `false`, `null`: literal.
    - A text answer (not JSON): line by line, with `...` as above and every number as some
      number.
    - No answer shown: none printed (an error's body would be), and exit status 0.

Placeholders
    A shown string with `...` that matched an actual value binds that value: a later command
    that writes the same text (`/api/v1/status/5d0c...`, `KEY=qcos_9b1e..._...`) gets the
    value, as a reader copies it from the answer above. A command that writes an elided value
    no earlier answer bound fails the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

README_URL = "http://127.0.0.1:7071"
# Every address the README writes for the gateway of `make run`: a command's are replaced by the
# test's gateway (a URL in a script a command runs too), and the answers' by `README_URL`.
README_URLS = (README_URL, "http://localhost:7071")
# The webhook receiver the README has a reader run beside it (`python3 -m http.server`); the test
# runs one, on another port where 8000 is taken, and its address is replaced the same way.
RECEIVER_URL = "http://127.0.0.1:8000"
ELIDED = "\u2026elided\u2026"  # the key (in an object) or element (in an array) `...` became

ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
PENDING = frozenset({"queued", "processing", "running", "pending"})
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Dates that are the contract's, not the day's: the price book's.
FIXED_DATES = frozenset({"as_of", "pricebook_version", "version"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
EXPORT = re.compile(r"^export\s+[A-Za-z_]")
# `<<WORD`, `<<'WORD'`, `<<"WORD"`, `<<-WORD`: a here-document, ended by a line `WORD`
HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")

# Objects whose every value is a measured count or weight (their keys are still compared).
VARYING_OBJECTS = frozenset({"counts", "aggregated_counts", "weights"})
# Numbers that measure a run or a moment: times, sampled figures, estimates of noise.
VARYING_NUMBERS = frozenset(
    {
        # times
        "estimated_time_seconds",
        "execution_time_ms",
        "processing_time_seconds",
        "scoring_seconds",
        "solve_seconds",
        "duration_ms",
        "estimated_wait_s",
        "estimated_run_s",
        # drawn from samples
        "aggregation_confidence",
        "expectation",
        "optimum_probability",
        "optimizer_iterations",
        # what the ledger holds by then (a reader's earlier runs count too)
        "entries",
    }
)


@dataclass
class Example:
    """One `$ ` command of the README, and what the README shows it answers."""

    line: int
    command: str
    shown: str

    def __str__(self) -> str:
        return f"README.md:{self.line}: $ {self.command}"


@dataclass
class Blocks:
    examples: list[Example] = field(default_factory=list)
    # ```sh blocks without `$ ` lines: (line, command) for each command they list
    listed: list[tuple[int, str]] = field(default_factory=list)


def read_readme(text: str) -> Blocks:
    blocks = Blocks()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```sh":
            i += 1
            continue
        start = i + 1
        end = start
        while lines[end].strip() != "```":
            end += 1
        body = lines[start:end]
        if any(line.startswith("$ ") for line in body):
            blocks.examples += _examples(body, start + 1)
        else:
            for offset, line in enumerate(body):
                command = line.split("#", 1)[0].strip()
                if command:
                    blocks.listed.append((start + 1 + offset, command))
        i = end + 1
    return blocks


def _examples(body: list[str], first_line: int) -> list[Example]:
    examples: list[Example] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.startswith("$ "):
            raise ValueError(f"README.md:{first_line + i}: a line before the block's first `$ `")
        number = first_line + i
        command = line[2:]
        i += 1
        while continues(command):
            if i == len(body):
                raise ValueError(f"README.md:{number}: the command never ends")
            command += "\n" + body[i]
            i += 1
        shown: list[str] = []
        while i < len(body) and not body[i].startswith("$ "):
            shown.append(body[i])
            i += 1
        examples.append(Example(number, command, "\n".join(shown).strip()))
    return examples


def continues(command: str) -> bool:
    """Whether bash reads the next line as part of `command`: a quote left open, a final `\\`,
    or a here-document whose closing line has not come yet. A here-document's lines are its
    text, not the shell's: their quotes and `#` are not read."""
    quote = ""
    heredocs: list[tuple[bool, str]] = []  # opened on the current line: (tabs stripped, word)
    i = 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = ""
        elif quote == '"':
            if c == "\\":
                i += 1
            elif c == '"':
                quote = ""
        elif c == "\\":
            if i == len(command) - 1:
                return True
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or command[i - 1].isspace()):
            newline = command.find("\n", i)
            if newline < 0:
                break
            i = newline
            continue
        elif c == "<" and _heredoc_at(command, i) and (opened := HEREDOC.match(command, i)):
            heredocs.append((opened.group(1) == "-", opened.group(3)))
            i = opened.end()
            continue
        elif c == "\n" and heredocs:
            i = _past_heredocs(command, i + 1, heredocs)
            if i < 0:
                return True
            heredocs = []
            continue
        i += 1
    return bool(quote or heredocs)


def _heredoc_at(command: str, i: int) -> bool:
    """Whether the `<` at `i` may begin `<<` (not within `<<<`, a here-string)."""
    return not command.startswith("<<<", i) and (i == 0 or command[i - 1] != "<")


def _past_heredocs(command: str, start: int, heredocs: list[tuple[bool, str]]) -> int:
    """Where the shell reads on after the bodies of `heredocs`, which begin at `start`; -1
    while a body's closing line has not come."""
    for strip_tabs, word in heredocs:
        while True:
            newline = command.find("\n", start)
            line = command[start:] if newline < 0 else command[start:newline]
            start = len(command) if newline < 0 else newline + 1
            if (line.lstrip("\t") if strip_tabs else line) == word:
                break
            if newline < 0:
                return -1
    return start


# -- what the README shows, as a pattern -------------------------------------------------------


def json_pattern(shown: str) -> Any:
    """The shown JSON with each `...` outside a string made an `ELIDED` key or element."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(shown):
        c = shown[i]
        if c == '"':
            end = i + 1
            while shown[end] != '"':
                end += 2 if shown[end] == "\\" else 1
            out.append(shown[i : end + 1])
            i = end + 1
            continue
        if shown.startswith("...", i):
            if not stack:
                raise ValueError(f"`...` outside an object or array: {shown!r}")
            out.append(json.dumps(ELIDED) + (":null" if stack[-1] == "{" else ""))
            i += 3
            continue
        if c in "{[":
            stack.append(c)
        elif c in "}]":
            stack.pop()
        out.append(c)
        i += 1
    return json.loads("".join(out))


def elided_text(shown: str) -> re.Pattern[str]:
    """A string or line with `...`: the pattern it stands for (see the module's docstring)."""
    parts = re.split(r"([A-Za-z0-9]*\.\.\.[A-Za-z0-9]*|\d+)", shown)
    regex = ""
    for n, part in enumerate(parts):
        if n % 2 == 0:
            regex += re.escape(part)
        elif "..." in part:
            regex += ".*?"
        else:
            regex += r"-?\d+(\.\d+)?"
    return re.compile(regex + "$", re.DOTALL)


class Matcher:
    """Compares an actual answer with the README's pattern; `problems` says where they differ,
    `bindings` what each matched placeholder stood for."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.bindings: dict[str, str] = {}

    def json(self, shown: Any, actual: Any, path: str = "$", varying: bool = False) -> None:
        """`varying`: a number here measures a run or a moment (any number matches)."""
        if isinstance(shown, dict):
            self._object(shown, actual, path, path.rsplit(".", 1)[-1] in VARYING_OBJECTS)
        elif isinstance(shown, list):
            self._array(shown, actual, path)
        elif isinstance(shown, str):
            self._string(shown, actual, path)
        elif isinstance(shown, bool) or shown is None:
            if actual is not shown:
                self._differs(path, shown, actual)
        elif isinstance(shown, int | float):
            if isinstance(actual, bool) or not isinstance(actual, int | float):
                self._differs(path, shown, actual)
            elif not varying and shown != actual:
                self._differs(path, shown, actual)

    def _object(self, shown: dict[str, Any], actual: Any, path: str, counts: bool) -> None:
        if not isinstance(actual, dict):
            self._differs(path, "an object", actual)
            return
        for name, value in shown.items():
            if name == ELIDED:
                continue
            if name not in actual:
                self.problems.append(f"{path}: no key {name!r} (it has {sorted(actual)})")
            else:
                varying = counts or name in VARYING_NUMBERS
                self.json(value, actual[name], f"{path}.{name}", varying)
        extra = sorted(set(actual) - set(shown))
        if extra and ELIDED not in shown:
            self.problems.append(f"{path}: keys the README does not show: {extra}")

    def _array(self, shown: list[Any], actual: Any, path: str) -> None:
        if not isinstance(actual, list):
            self._differs(path, "an array", actual)
            return
        wanted = [item for item in shown if item != ELIDED]
        if len(wanted) == len(shown):
            if len(actual) != len(shown):
                self.problems.append(
                    f"{path}: {len(actual)} elements, the README shows {len(shown)}"
                )
                return
            for n, (want, have) in enumerate(zip(shown, actual, strict=True)):
                self.json(want, have, f"{path}[{n}]")
            return
        start = 0
        for want in wanted:  # in order, among the others
            closest: list[str] | None = None
            for n in range(start, len(actual)):
                trial = Matcher()
                trial.json(want, actual[n], f"{path}[{n}]")
                if not trial.problems:
                    self.bindings.update(trial.bindings)
                    start = n + 1
                    break
                if closest is None or len(trial.problems) < len(closest):
                    closest = trial.problems
            else:
                self.problems.append(f"{path}: no element from [{start}] on is the README's")
                self.problems += [f"  the closest: {problem}" for problem in closest or []]
                return

    def _string(self, shown: str, actual: Any, path: str) -> None:
        if not isinstance(actual, str):
            self._differs(path, shown, actual)
        elif "..." in shown:
            if not elided_text(shown).match(actual):
                self._differs(path, shown, actual)
            else:
                self._bind(shown, actual, path)
        elif ISO_DATETIME.match(shown):
            if not ISO_DATETIME.match(actual):
                self._differs(path, "an ISO 8601 date-time", actual)
        elif ISO_DATE.match(shown) and path.rsplit(".", 1)[-1] not in FIXED_DATES:
            if not ISO_DATE.match(actual):
                self._differs(path, "a date", actual)
        elif shown != actual:
            self._differs(path, shown, actual)

    def text(self, shown: str, actual: str) -> None:
        want = shown.splitlines()
        have = actual.strip().splitlines()
        if len(want) != len(have):
            self.problems.append(f"{len(have)} lines, the README shows {len(want)}: {actual!r}")
            return
        for n, (line, got) in enumerate(zip(want, have, strict=True)):
            if not elided_text(line.strip()).match(got.strip()):
                self._differs(f"line {n + 1}", line, got)
            elif "..." in line:  # each placeholder in the line binds what stands in its place
                for word, value in zip(line.split(), got.split(), strict=False):
                    if "..." in word:
                        self._bind(word, value, f"line {n + 1}")

    def _bind(self, shown: str, actual: str, path: str) -> None:
        known = self.bindings.get(shown)
        if known is not None and known != actual:
            self.problems.append(f"{path}: {shown!r} stood for {known!r} already, now {actual!r}")
        self.bindings[shown] = actual

    def _differs(self, path: str, shown: Any, actual: Any) -> None:
        text = json.dumps(actual) if not isinstance(actual, str) else repr(actual)
        self.problems.append(f"{path}: the README shows {shown!r}, the answer has {text[:300]}")


# -- the reader's shell ------------------------------------------------------------------------


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


class Session:
    """A reader's shell session in `cwd`: each command runs in bash after the variable
    assignments and exports the README made before it (`ADMIN=...`, `KEY=...`, `export KEY`),
    with the README's addresses replaced by the gateway's (`url`) and the receiver's
    (`receiver_url`), and the placeholders of earlier answers by their values."""

    def __init__(
        self, cwd: Path, url: str, env: dict[str, str], receiver_url: str = RECEIVER_URL
    ) -> None:
        self.cwd = cwd
        self.url = url
        self.env = env
        self.assignments: list[str] = []
        self.bindings: dict[str, str] = {}
        self._to_session = {**dict.fromkeys(README_URLS, url), RECEIVER_URL: receiver_url}
        self._to_readme = {url: README_URL, receiver_url: RECEIVER_URL}

    def as_readme(self, answer: str) -> str:
        """`answer` with this session's addresses written as the README writes them."""
        return _replace(answer, self._to_readme)

    def expand(self, command: str) -> str:
        text = _replace(command, self._to_session)
        for shown in sorted(self.bindings, key=len, reverse=True):
            text = text.replace(shown, self.bindings[shown])
        if "..." in text:
            raise AssertionError(f"it writes an elided value no answer before it showed: {text}")
        return text

    def run(self, command: str, timeout: float = 300) -> Ran:
        expanded = self.expand(command)
        script = "\n".join([*self.assignments, expanded])
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode == 0 and (ASSIGNMENT.match(expanded) or EXPORT.match(expanded)):
            self.assignments.append(expanded)
        return Ran(done.returncode, done.stdout, done.stderr)


def _replace(text: str, table: dict[str, str]) -> str:
    """Each key of `table` in `text` replaced by its value, in one pass: a replacement is not
    replaced again (the test's receiver may listen on the port the README gives the gateway)."""
    keys = sorted(table, key=len, reverse=True)
    return re.sub("|".join(map(re.escape, keys)), lambda found: table[found[0]], text)


def is_read(command: str) -> bool:
    """A GET (no method but GET, no body): asking again is what a reader does while it waits."""
    method = re.search(r"-X\s+([A-Z]+)", command)
    get = method is None or method.group(1) == "GET"
    return command.lstrip().startswith("curl ") and get and " -d " not in command


def pending(answer: str) -> bool:
    """Whether `answer` is of something not done yet: a job's that has not ended (queued or
    running), or a webhook's delivery log before the queue function's first attempt."""
    try:
        body = json.loads(answer)
    except ValueError:
        return False
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict):
        return False
    # results asked for before the job completed: JOB_NOT_COMPLETE
    if body.get("status") in PENDING or body.get("error_code") == "JOB_NOT_COMPLETE":
        return True
    return body.get("deliveries") == []


def check(session: Session, example: Example, wait_s: float = 120) -> list[str]:
    """Run `example` in `session` and compare its answer with what the README shows; a read
    that answers something not done yet (`pending`: a job still queued or running, a delivery
    log still empty) is asked again until it matches, that is done, or `wait_s` passes, as a
    reader asks again while a job runs. The problems found, or none (then the placeholders it
    bound are the session's)."""
    deadline = time.monotonic() + wait_s
    while True:
        ran = session.run(example.command)
        answer = session.as_readme(ran.stdout)  # links in answers
        matcher = Matcher()
        if ran.returncode != 0:
            matcher.problems.append(f"exit status {ran.returncode}: {ran.stderr[-2000:]}")
        elif not example.shown:
            if answer.strip():  # an assignment, a download, a DELETE's 204: no body
                matcher.problems.append(f"the README shows no answer, it printed {answer!r}")
        elif example.shown.startswith(("{", "[")):
            try:
                actual = json.loads(answer)
            except ValueError:
                matcher.problems.append(f"not JSON: {answer[:2000]!r}")
            else:
                matcher.json(json_pattern(example.shown), actual)
        else:
            matcher.text(example.shown, answer)
        if not matcher.problems:
            session.bindings.update(matcher.bindings)
            return []
        if not (is_read(example.command) and pending(answer)) or time.monotonic() > deadline:
            # what did match is what a reader would copy on with
            session.bindings.update(matcher.bindings)
            return [*matcher.problems, f"the answer: {answer[:4000]}"]
        time.sleep(0.5)
