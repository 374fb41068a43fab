"""Regular-expression filters with nova's database semantics and a bounded cost per row.

nova hands ``name=``, ``node=``, ``key_name=`` ... to its database: MySQL ``col REGEXP pattern``
(after escaping every ``|``, nova's ``_safe_regex_mysql``), case-insensitive under nova's
utf8 *_ci collation; PostgreSQL ``col ~ pattern``, case-sensitive, pattern as given.  Either is
an unanchored search; a NULL column matches nothing.  ``ip``/``ip6`` are the exception: nova's
compute API filters them in Python with ``re.match`` (anchored at the start, case-sensitive).

Cost.  A worker must not be stalled by a hostile pattern such as ``(a+)+$`` or ``(a|a)*b``.
Each pattern is compiled once per request by one of two engines, chosen from its parse tree:

* Python's ``re`` only for patterns without any repetition or alternation (literals, classes,
  ``.``, anchors, groups): such a pattern cannot backtrack, a search costs O(len(text) x
  len(pattern)), and ``re`` is ~2x faster per call than the RE2 binding.  Pure literals (what
  clients send nearly always) skip the regex engine: a ``str.find`` on lowercased text.
* RE2 (``google-re2``) for everything else: automata, linear time in the text, memory capped
  (``max_mem``).  RE2 has no backreferences or lookaround; such a pattern gets a 400 naming the
  limitation (MySQL 8's ICU engine would accept it).

Patterns longer than MAX_PATTERN characters are refused with the same 400, so the per-row
bound is O(255-character column x 1,000-character pattern).  Without ``google-re2`` installed
only the first class is accepted.
"""
from __future__ import annotations

import re

try:
    import re._parser as _sre_parse
    import re._constants as _sre
except ImportError:  # Python < 3.11
    import sre_parse as _sre_parse  # type: ignore[no-redef]
    import sre_constants as _sre  # type: ignore[no-redef]

try:
    import re2 as _re2
except ImportError:  # pragma: no cover - the deployment is expected to have it
    _re2 = None

MYSQL = "mysql"
POSTGRESQL = "postgresql"
FLAVOURS = (MYSQL, POSTGRESQL)
MAX_PATTERN = 1000
RE2_MAX_MEM = 8 << 20

_SIMPLE_OPS = frozenset((_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN, _sre.AT,
                         _sre.SUBPATTERN))
_META = frozenset("\\.^$*+?{}[]|()")


class UnsupportedPattern(ValueError):
    """A pattern this engine does not evaluate (too long, or needs backtracking features)."""


def valid_python_regex(value: str) -> bool:
    """nova's query-schema 'regex' format: non-empty and compiled by Python's re."""
    if not value:
        return False
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def _simple(items) -> bool:
    for op, arg in items:
        if op not in _SIMPLE_OPS:
            return False
        if op == _sre.SUBPATTERN and not _simple(arg[-1]):
            return False
    return True


class Matcher:
    """One compiled filter pattern: ``test(text)`` for a column value (None never matches)."""

    __slots__ = ("test", "pattern")

    def __init__(self, pattern: str, ignore_case: bool, anchored: bool = False):
        if len(pattern) > MAX_PATTERN:
            raise UnsupportedPattern("longer than %d characters" % MAX_PATTERN)
        self.pattern = pattern
        if not anchored and not (_META & set(pattern)):
            self.test = self._literal(pattern, ignore_case)
            return
        try:
            parsed = _sre_parse.parse(pattern, re.IGNORECASE if ignore_case else 0)
        except (re.error, RecursionError, OverflowError) as exc:
            raise UnsupportedPattern(str(exc)) from exc
        if _simple(parsed):
            compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
            self.test = self._wrap(compiled.match if anchored else compiled.search)
        else:
            self.test = self._wrap(self._re2(pattern, ignore_case, anchored))

    @staticmethod
    def _literal(pattern: str, ignore_case: bool):
        if ignore_case:
            needle = pattern.lower()
            return lambda text: text is not None and needle in str(text).lower()
        return lambda text: text is not None and pattern in str(text)

    @staticmethod
    def _wrap(search):
        return lambda text: text is not None and search(str(text)) is not None

    @staticmethod
    def _re2(pattern: str, ignore_case: bool, anchored: bool):
        if _re2 is None:
            raise UnsupportedPattern("repetition or alternation needs google-re2")
        options = _re2.Options()
        options.case_sensitive = not ignore_case
        options.log_errors = False
        options.max_mem = RE2_MAX_MEM
        try:
            compiled = _re2.compile(pattern, options)
        except Exception as exc:  # re2.error: backreferences, lookaround, too big
            raise UnsupportedPattern(str(exc)) from exc
        return compiled.match if anchored else compiled.search


def column_matcher(pattern: str, flavour: str) -> Matcher:
    """A REGEXP/~ filter on a column, as nova's database evaluates it."""
    if flavour == MYSQL:
        return Matcher(pattern.replace("|", "\\|"), ignore_case=True)
    return Matcher(pattern, ignore_case=False)


def ip_matcher(pattern: str) -> Matcher:
    """nova's ``_ip_filter``: ``re.match`` on each fixed address."""
    return Matcher(pattern, ignore_case=False, anchored=True)
