"""Map an import, as written, to the repository files that define what it binds.

One resolver for every language, driven only by the set of repository paths, so it
costs no I/O: Python dotted and relative modules (flat and ``src/`` layouts), TS/JS
relative paths (with the extension and ``index`` fallbacks bundlers apply, and ``.js``
specifiers that name ``.ts`` sources), Java packages, C# namespaces (by directory
convention), Go import paths (by ``go.mod`` module prefix or path suffix) and Rust
``crate``/``super``/``self`` paths.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable

from .types import ImportBinding

_TS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs")


class ModuleResolver:
    def __init__(self, paths: Iterable[str], go_module: str | None = None) -> None:
        self.paths = set(paths)
        self.go_module = go_module
        self._python_roots = self._find_python_roots()
        self._roots_of_module = self._python_modules()
        self._by_dir: dict[str, list[str]] = defaultdict(list)
        for path in self.paths:
            self._by_dir[posixpath.dirname(path)].append(path)

    def _find_python_roots(self) -> list[str]:
        roots = {""}
        for path in self.paths:
            if path.endswith(".py"):
                parts = path.split("/")
                if "src" in parts[:-1]:
                    roots.add("/".join(parts[: parts.index("src") + 1]))
        # A top-level package under a non-package folder (lib/pkg/__init__.py) is a root too.
        for path in self.paths:
            if path.endswith("/__init__.py"):
                parent = posixpath.dirname(posixpath.dirname(path))
                if parent and f"{parent}/__init__.py" not in self.paths:
                    roots.add(parent)
        return sorted(roots, key=len)

    def _python_modules(self) -> dict[str, list[str]]:
        """Dotted module name -> the roots it exists under (shortest root first), so that an
        absolute import is looked up, not tried under every root of a large tree."""
        order = {root: i for i, root in enumerate(self._python_roots)}
        found: dict[str, set[str]] = defaultdict(set)
        for path in self.paths:
            if not path.endswith((".py", ".pyi")):
                continue
            stem = path.rsplit(".", 1)[0]
            if stem.endswith("/__init__"):
                stem = stem[: -len("/__init__")]
            parts = stem.split("/")
            for depth in range(len(parts)):
                root = "/".join(parts[:depth])
                if root in order:
                    found[".".join(parts[depth:])].add(root)
        return {module: sorted(roots, key=order.__getitem__) for module, roots in found.items()}

    def resolve(self, importer: str, binding: ImportBinding, member: str | None = None) -> list[str]:
        """Files that may define `member` of the import (or the module itself when None)."""
        language = binding.language
        if language == "python":
            return self._python(importer, binding, member)
        if language in ("typescript", "tsx", "javascript"):
            return self._ts(importer, binding.module)
        if language == "java":
            return self._java(binding.module)
        if language == "c_sharp":
            return self._dotted_dir(binding.module, (".cs",))
        if language == "go":
            return self._go(binding.module)
        if language == "rust":
            return self._rust(importer, binding.module)
        return []

    # Python ----------------------------------------------------------------
    def _python(self, importer: str, binding: ImportBinding, member: str | None) -> list[str]:
        module = binding.module
        if binding.level:
            base = posixpath.dirname(importer)
            for _ in range(binding.level - 1):
                base = posixpath.dirname(base)
            stems = [posixpath.join(base, *module.split(".")) if module else base]
        else:
            roots = set(self._roots_of_module.get(module, ()))
            if member:
                roots.update(self._roots_of_module.get(f"{module}.{member}", ()))
            ordered = sorted(roots, key=lambda root: (len(root), root))
            # A module under the importer's own root is the one Python imports: where a tree
            # holds copies of a package under several roots, the others are not candidates.
            own = [root for root in ordered if not root or importer.startswith(root + "/")]
            if own:
                ordered = own[-1:]
            stems = [posixpath.join(root, *module.split(".")) for root in ordered]
        found: list[str] = []
        for stem in stems:
            stem = stem.lstrip("/")
            # `from pkg import name` may name a submodule rather than an attribute.
            if member:
                for candidate in (f"{stem}/{member}.py", f"{stem}/{member}/__init__.py"):
                    if candidate in self.paths:
                        found.append(candidate)
            for candidate in (f"{stem}.py", f"{stem}/__init__.py", f"{stem}.pyi"):
                if candidate in self.paths:
                    found.append(candidate)
        return _unique(found)

    # TypeScript / JavaScript ------------------------------------------------
    def _ts(self, importer: str, specifier: str) -> list[str]:
        if not specifier.startswith("."):
            return []  # a package from node_modules: not repository code
        stem = posixpath.normpath(posixpath.join(posixpath.dirname(importer), specifier))
        bare = stem
        for ext in (".js", ".jsx", ".mjs", ".cjs"):
            if stem.endswith(ext):
                bare = stem[: -len(ext)]
        candidates = [stem] + [bare + ext for ext in _TS_EXTENSIONS] + [f"{stem}/index{ext}" for ext in _TS_EXTENSIONS]
        return _unique(c for c in candidates if c in self.paths)

    # Java / C# --------------------------------------------------------------
    def _java(self, module: str) -> list[str]:
        parts = module.rstrip(".*").split(".")
        found = self._suffix_match("/".join(parts) + ".java")
        if not found and len(parts) > 1:  # static import: a.b.C.member
            found = self._suffix_match("/".join(parts[:-1]) + ".java")
        if not found:  # wildcard: the package's directory
            found = self._dotted_dir(".".join(parts), (".java",))
        return found

    def _dotted_dir(self, module: str, extensions: tuple[str, ...]) -> list[str]:
        suffix = "/".join(module.split("."))
        found = []
        for directory, files in self._by_dir.items():
            if directory == suffix or directory.endswith("/" + suffix):
                found.extend(f for f in files if f.endswith(extensions))
        if not found:  # C# folders often drop the root namespace: match the last parts
            parts = module.split(".")
            for n in range(len(parts) - 1, 0, -1):
                tail = "/".join(parts[-n:])
                for directory, files in self._by_dir.items():
                    if directory == tail or directory.endswith("/" + tail):
                        found.extend(f for f in files if f.endswith(extensions))
                if found:
                    break
        return sorted(found)

    def _suffix_match(self, suffix: str) -> list[str]:
        return sorted(p for p in self.paths if p == suffix or p.endswith("/" + suffix))

    # Go ---------------------------------------------------------------------
    def _go(self, module: str) -> list[str]:
        rel = None
        if self.go_module and (module == self.go_module or module.startswith(self.go_module + "/")):
            rel = module[len(self.go_module) :].lstrip("/")
        candidates = [rel] if rel is not None else []
        parts = module.split("/")
        candidates += ["/".join(parts[i:]) for i in range(1, len(parts))]
        for directory in candidates:
            files = [f for f in self._by_dir.get(directory, []) if f.endswith(".go") and not f.endswith("_test.go")]
            if files:
                return sorted(files)
        return []

    # Rust -------------------------------------------------------------------
    def _rust(self, importer: str, module: str) -> list[str]:
        parts = [p for p in module.split("::") if p]
        if not parts:
            return []
        head = parts[0]
        if head == "crate":
            base = importer.split("src/")[0] + "src" if "src/" in importer else posixpath.dirname(importer)
            rest = parts[1:]
        else:
            # A file's child modules live in a folder named after it (or beside mod.rs/lib.rs/main.rs).
            name = posixpath.basename(importer)
            base = posixpath.dirname(importer) if name in ("mod.rs", "lib.rs", "main.rs") else importer[: -len(".rs")]
            rest = parts
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    base = posixpath.dirname(base)
                rest = rest[1:]
        found: list[str] = []
        # Try the longest module path first: the last parts may be items, not modules.
        for n in range(len(rest), -1, -1):
            stem = posixpath.join(base, *rest[:n]) if rest[:n] else base
            for candidate in (f"{stem}.rs", f"{stem}/mod.rs", f"{stem}/lib.rs"):
                if candidate in self.paths:
                    found.append(candidate)
            if found:
                break
        return _unique(found)


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
