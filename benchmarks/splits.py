"""The repositories the cross-file benchmarks tune on, and those they test on.

Named before any tuning with the log-prob signal. Every decision about repoctx (a source, a
quota, a layout, a default) is made on ``DEV``; ``TEST`` is only ever measured, to report
where repoctx stands on repositories no decision saw. The packages retired from the earlier
development set (jedi, jinja2, lark, mistune) are in neither split: earlier tuning looked
at them, so they cannot test, and the development split does not need them.

Half or more of each split are packages first released in 2025 or later, after
Qwen2.5-Coder's training data was collected (the model was released in September and
November 2024): in-file exact match on famous packages is partly memory, which hides what
context is worth. ``first_release`` is the earliest upload on PyPI (its JSON API's
``releases``) or the earliest version time npm reports; every package is a plain source
distribution (PyPI sdist) or an npm tarball with its TypeScript sources, pinned to an exact
version and sha256, and yields at least 50 cross-file line tasks (`build_line_tasks`).

    python -m benchmarks.cceval $(python -m benchmarks.splits test --repo-args) --n 30 ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

__all__ = ["DEV", "RETIRED", "SPLITS", "TEST", "Package", "package_age", "split_of"]

NEW_SINCE = "2025-01-01"


@dataclass(frozen=True)
class Package:
    spec: str  # a benchmarks.sources spec, exact version
    sha256: str  # of the sdist / npm tarball
    first_release: str  # YYYY-MM-DD, earliest upload the registry reports
    line_tasks: int  # cross-file line tasks build_line_tasks finds (seed 0), when the split was named

    @property
    def new(self) -> bool:
        return self.first_release >= NEW_SINCE

    @property
    def repo_arg(self) -> str:
        if self.spec.startswith("npm:"):
            return self.spec
        return f"{self.spec} --hash=sha256:{self.sha256}"

    @property
    def key(self) -> str:
        """The cache folder name `benchmarks.sources.fetch_repo` gives the package."""
        if self.spec.startswith("npm:"):
            name, _, version = self.spec[4:].rpartition("@")
            return "npm-" + name.replace("@", "").replace("/", "__") + "-" + version
        name, _, version = self.spec.partition("==")
        return f"{name}-{version}"


DEV: tuple[Package, ...] = (
    Package("astroid==4.3.4", "d515a105722b72098bbe82d430d65e635f742b6cbac3bdfaf8b7c188b87c5e39", "2013-07-30", 8002),
    Package("click==8.5.1", "9bbfada76703fd1d784b83eea012e3e8c6a001a876543ef104fa56aaaeb072b4", "2014-04-28", 2199),
    Package("werkzeug==3.1.9", "55ca7c70a75689be937aa27f8ff4b018f06ff4838fc73045560bf0f5a1291060", "2007-12-09", 2330),
    Package("tomlkit==0.15.2", "83e32755ba1d20d9340bd069ee97e9f6232ba2346b63ffcba425de01f7e327a6", "2018-07-10", 1096),
    Package("npm:zod@4.6.7", "84efd155bed93270286e793fc951be270b536cbd5b0eeb111f0fa3967201d698", "2024-04-02", 7211),
    Package("pydantic-evals==2.62.0", "f6d44de440ce0ad0d25962dc839c851ea8a4055affe0a8201bea22ca65ba8c48", "2025-03-31", 431),
    Package("fastapi-mcp==0.4.0", "d4ca9410996f4c7b8ea0d7b20fdf79878dc359ebf89cbf3b222e0b675a55097d", "2025-03-08", 238),
    Package("strands-agents==1.62.0", "8732c87f9c1ceb6ef4c5c4bd6d96b4cdf1bbfde095f1537ec2ac6fddb8d5a066", "2025-05-14", 10000),
    Package("google-adk==2.13.0", "bc2389c9d41bfadd9f0c87d6bfd8d5c7eaf1c449e8906079600b8f3752ddaa88", "2025-03-17", 8914),
    Package("npm:@tanstack/pacer@0.22.0", "0951d7457b2acf2410112c409917781bb593d35fb1cd0a79fbdea7283c7da138", "2025-10-23", 111),
)

TEST: tuple[Package, ...] = (
    Package("httpx==0.28.1", "75e98c5f16b0f35b567856f597f06ff2270a374470a5c2392242528e3e3e42fc", "2019-07-19", 1693),
    Package("marshmallow==3.26.1", "e6d8affb6cb61d39d26402096dc0aee12d5a26d490a121f118d2e81dc0719dc6", "2013-11-11", 2647),
    Package("npm:@tanstack/query-core@5.108.0", "295e04168c1afddc3c0c95a88751b4c3bb69ebe56aee81b523b41bb37daea815",
            "2024-02-27", 613),
    Package("a2a-sdk==1.3.0", "73694717de50f36aaebd57b8fc6636ecaa825eb0d4437984fa2cd17f703a6808", "2025-05-15", 2825),
    Package("gepa==0.1.4", "6dd153a676ae5481764860d19286a9c0e8ddb5ef70d7f13044faf24978bdb6b8", "2025-08-11", 1418),
    Package("mcp-use==1.7.1", "7a05bc57a6d03e8a26b0b64fedd699a90e0e5d1b7d1f584de2f0331ec16f0783", "2025-03-30", 1309),
    Package("openai-agents==0.24.0", "4b4b285f4fed81fdf1b4ac426a9101658d9cd29b4fb1aaeee18f639b77e704e3", "2025-03-04", 10000),
    Package("npm:@tanstack/db@0.15.2", "18682e004ce628f78fd144409e8780c9cca774eaac141f953d1a146a573738b9", "2026-01-07", 3386),
)

RETIRED = ("jedi==0.20.1", "jinja2==3.1.6", "lark==1.3.1", "mistune==3.4.0")
SPLITS = {"dev": DEV, "test": TEST}


def _all() -> tuple[Package, ...]:
    return DEV + TEST


def package_age(repo_name: str) -> str:
    """"new" or "old" for a package of either split, by its cache folder name; else "unknown"."""
    for package in _all():
        if package.key == repo_name:
            return "new" if package.new else "old"
    return "unknown"


def split_of(repo_name: str) -> str:
    for name, packages in SPLITS.items():
        if any(p.key == repo_name for p in packages):
            return name
    return "retired" if any(repo_name == spec.replace("==", "-") for spec in RETIRED) else "other"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SPLITS:
        print("usage: python -m benchmarks.splits dev|test [--repo-args]", file=sys.stderr)
        return 2
    packages = SPLITS[args[0]]
    if "--repo-args" in args[1:]:
        import shlex

        print(" ".join(f"--repo {shlex.quote(p.repo_arg)}" for p in packages))
    else:
        for p in packages:
            print(f"{p.spec}\t{'new' if p.new else 'old'}\tfirst {p.first_release}\t{p.line_tasks} line tasks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
