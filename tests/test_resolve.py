from repoctx.resolve import ModuleResolver
from repoctx.types import ImportBinding

PATHS = [
    "src/shop/__init__.py", "src/shop/pricing/__init__.py", "src/shop/pricing/calc.py", "src/shop/models.py",
    "tools/run.py",
    "web/src/api/client.ts", "web/src/api/index.ts", "web/src/components/Button.tsx", "web/src/util.js",
    "java/src/main/java/com/acme/shop/Cart.java", "java/src/main/java/com/acme/shop/Item.java",
    "dotnet/Shop/Models/Order.cs", "dotnet/Shop/Services/Pricing.cs",
    "go/internal/pricing/calc.go", "go/internal/pricing/calc_test.go", "go/cmd/main.go",
    "rs/src/lib.rs", "rs/src/pricing/mod.rs", "rs/src/pricing/tax.rs", "rs/src/cart.rs",
]


def binding(module, language, level=0, names=None):
    return ImportBinding(module=module, names=names or {}, level=level, language=language)


def test_python_absolute_with_src_layout_and_submodule_member():
    r = ModuleResolver(PATHS)
    assert r.resolve("tools/run.py", binding("shop.pricing.calc", "python")) == ["src/shop/pricing/calc.py"]
    # `from shop.pricing import calc` names a submodule
    assert "src/shop/pricing/calc.py" in r.resolve("tools/run.py", binding("shop.pricing", "python"), member="calc")
    assert r.resolve("tools/run.py", binding("shop.pricing", "python")) == ["src/shop/pricing/__init__.py"]


def test_python_prefers_the_copy_under_the_importers_own_root():
    copies = [f"{root}/shop/{name}" for root in ("svc_a", "svc_b", "svc_c") for name in ("__init__.py", "models.py")]
    r = ModuleResolver(copies + ["tools/run.py"])
    assert r.resolve("svc_b/shop/__init__.py", binding("shop.models", "python")) == ["svc_b/shop/models.py"]
    # From outside every copy, each is a candidate.
    assert r.resolve("tools/run.py", binding("shop.models", "python")) == [
        "svc_a/shop/models.py", "svc_b/shop/models.py", "svc_c/shop/models.py"
    ]


def test_python_relative_levels():
    r = ModuleResolver(PATHS)
    assert r.resolve("src/shop/pricing/calc.py", binding("models", "python", level=2)) == ["src/shop/models.py"]
    assert r.resolve("src/shop/pricing/__init__.py", binding("calc", "python", level=1)) == ["src/shop/pricing/calc.py"]
    assert r.resolve("src/shop/models.py", binding("", "python", level=1), member="pricing") == ["src/shop/pricing/__init__.py", "src/shop/__init__.py"]


def test_typescript_relative_paths_extensions_and_index():
    r = ModuleResolver(PATHS)
    assert r.resolve("web/src/components/Button.tsx", binding("../api/client", "tsx")) == ["web/src/api/client.ts"]
    assert r.resolve("web/src/components/Button.tsx", binding("../api", "tsx")) == ["web/src/api/index.ts"]
    assert r.resolve("web/src/api/index.ts", binding("./client.js", "typescript")) == ["web/src/api/client.ts"]
    assert r.resolve("web/src/api/index.ts", binding("../util", "typescript")) == ["web/src/util.js"]
    assert r.resolve("web/src/api/index.ts", binding("react", "typescript")) == []


def test_java_csharp_go_rust():
    r = ModuleResolver(PATHS, go_module="example.com/shop")
    assert r.resolve("x.java", binding("com.acme.shop.Item", "java")) == ["java/src/main/java/com/acme/shop/Item.java"]
    assert len(r.resolve("x.java", binding("com.acme.shop.*", "java"))) == 2
    assert r.resolve("a.cs", binding("Shop.Models", "c_sharp")) == ["dotnet/Shop/Models/Order.cs"]
    assert r.resolve("a.cs", binding("Acme.Shop.Services", "c_sharp")) == ["dotnet/Shop/Services/Pricing.cs"]
    assert r.resolve("go/cmd/main.go", binding("example.com/shop/go/internal/pricing", "go")) == ["go/internal/pricing/calc.go"]
    assert r.resolve("rs/src/cart.rs", binding("crate::pricing::tax::Rate", "rust")) == ["rs/src/pricing/tax.rs"]
    assert r.resolve("rs/src/pricing/tax.rs", binding("super::super::cart", "rust")) == ["rs/src/cart.rs"]
    assert r.resolve("rs/src/cart.rs", binding("crate::pricing", "rust")) == ["rs/src/pricing/mod.rs"]
