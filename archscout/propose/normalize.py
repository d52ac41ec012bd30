"""Normalised-code hashing: two candidate files that differ only in names, comments, docstrings,
annotations, formatting or import style hash the same.

The AST is canonicalised — local and attribute names become placeholders in order of first use —
while operators, constants, call structure and the torch / nn / F functions used are kept, so
`torch.sigmoid` and `torch.tanh` hash differently. The code is parsed, never run. Used by the
novelty check (novelty.py) and stored per architecture as `norm_hash`.
"""

from __future__ import annotations

import ast
import hashlib
from collections import deque

# Method names the evaluator calls by name, and nn.Module attributes: renaming them changes behaviour.
_KEEP_ATTRS = frozenset({"forward", "reset_parameters", "extra_repr", "training"})
_REGISTER = frozenset({"register_buffer", "register_parameter", "add_module"})
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _children(node: ast.AST) -> list[ast.AST]:
    """ast.iter_child_nodes as a list, in the same order (without its generators: the hash parses
    and walks every proposal, and the walks were a third of its time)."""
    out = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.AST))
    return out


def _walk(root: ast.AST):
    """ast.walk (breadth first, the same order), over `_children`."""
    todo = deque([root])
    while todo:
        node = todo.popleft()
        todo.extend(_children(node))
        yield node


def _params(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _bound_here(node: ast.AST) -> set[str]:
    """Names a scope binds itself (not inside nested scopes), minus global/nonlocal declarations."""
    if isinstance(node, _FUNCS):
        bound = {a.arg for a in _params(node.args)}
        stack = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    elif isinstance(node, _COMPS):
        bound, stack = set(), [g.target for g in node.generators]
    else:
        bound, stack = set(), list(node.body)
    declared: set[str] = set()
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
            continue
        if isinstance(n, (ast.Lambda, *_COMPS, ast.Import, ast.ImportFrom)):
            continue  # own scope, or resolved to a module path instead
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            declared.update(n.names)
        stack.extend(_children(n))
    return bound - declared


class _Scope:
    def __init__(self, kind: str, names: set[str], prefix: str = ""):
        self.kind, self.names, self.prefix, self.map = kind, names, prefix, {}

    def get(self, name: str) -> str:
        # Placeholders in order of first appearance: same structure => same placeholders.
        return self.map.setdefault(name, f"{self.prefix}{len(self.map)}")


class _Canonicalizer(ast.NodeTransformer):
    """Renames a module's own names to placeholders; resolves imported names to dotted module paths."""

    def __init__(self, tree: ast.Module):
        self.imports: dict[str, str] = {}
        self_names: set[str] = set()
        self.attrs: set[str] = set()
        # Keyword arguments of calls to the file's own functions/classes follow their parameters.
        self.callables: dict[str, list[str]] = {}
        self.methods: dict[str, list[str]] = {}
        for n in _walk(tree):
            if isinstance(n, ast.Import):
                for a in n.names:
                    root = a.name.split(".")[0]  # `import torch.nn` binds `torch`
                    self.imports[a.asname or root] = a.name if a.asname else root
            elif isinstance(n, ast.ImportFrom):
                base = "." * n.level + (n.module or "")
                for a in n.names:
                    self.imports[a.asname or a.name] = f"{base}.{a.name}" if n.module else base + a.name
            elif isinstance(n, ast.ClassDef):
                self.attrs |= _bound_here(n)
                for f in n.body:
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and _params(f.args):
                        self_names.add(_params(f.args)[0].arg)
                        self.methods.setdefault(f.name, [a.arg for a in _params(f.args)])
                        if f.name == "__init__":
                            self.callables[n.name] = [a.arg for a in _params(f.args)]
        for f in tree.body:
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.callables[f.name] = [a.arg for a in _params(f.args)]
        for n in _walk(tree):
            if isinstance(n, ast.Attribute) and not isinstance(n.ctx, ast.Load):
                if isinstance(n.value, ast.Name) and n.value.id in self_names:
                    self.attrs.add(n.attr)
            elif isinstance(n, ast.Call) and getattr(n.func, "attr", None) in _REGISTER and n.args:
                if isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
                    self.attrs.add(n.args[0].value)  # register_buffer("decay", ...) defines self.decay
        self.attrs = {a for a in self.attrs if a not in _KEEP_ATTRS and not a.startswith("__")}
        self.attr_scope = _Scope("attr", self.attrs, "a")
        self.scopes = [_Scope("module", _bound_here(tree), "g")]

    def _resolve(self, name: str) -> tuple[str, bool]:
        """(new name, is an import). Class scopes are invisible from nested functions, as in Python."""
        for depth, scope in enumerate(reversed(self.scopes)):
            if scope.kind == "class" and depth > 0:
                continue
            if name in scope.names:
                return (self._attr(name) if scope.kind == "class" else scope.get(name)), False
        if name in self.imports:
            return self.imports[name], True
        return name, False  # a builtin

    def _attr(self, name: str) -> str:
        return self.attr_scope.get(name) if name in self.attrs else name

    def _body(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            r = self.visit(s)
            out.extend([] if r is None else r if isinstance(r, list) else [r])
        return out

    def _push_function(self, node: ast.AST) -> None:
        depth = 1 + sum(s.kind == "function" for s in self.scopes)
        scope = _Scope("function", _bound_here(node), f"v{depth}_")
        if isinstance(node, _FUNCS):
            for a in _params(node.args):  # parameters first, in signature order (see visit_Call)
                a.arg, a.annotation = scope.get(a.arg), None
        self.scopes.append(scope)

    def visit_FunctionDef(self, node):
        lam = isinstance(node, ast.Lambda)
        if not lam:  # the name, decorators and defaults belong to the enclosing scope
            node.name = self._resolve(node.name)[0]
            node.decorator_list = [self.visit(d) for d in node.decorator_list]
            node.returns = None
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [d and self.visit(d) for d in node.args.kw_defaults]
        self._push_function(node)
        node.body = self.visit(node.body) if lam else self._body(node.body)
        self.scopes.pop()
        return node

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def _visit_comp(self, node):
        # The first iterable is evaluated in the enclosing scope.
        node.generators[0].iter = self.visit(node.generators[0].iter)
        self._push_function(node)
        for i, g in enumerate(node.generators):
            g.target = self.visit(g.target)
            g.iter = g.iter if i == 0 else self.visit(g.iter)
            g.ifs = [self.visit(c) for c in g.ifs]
        for field in ("elt", "key", "value"):
            if hasattr(node, field):
                setattr(node, field, self.visit(getattr(node, field)))
        self.scopes.pop()
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comp

    def visit_ClassDef(self, node):
        node.name = self._resolve(node.name)[0]
        node.bases = [self.visit(b) for b in node.bases]
        node.keywords = [self.visit(k) for k in node.keywords]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        self.scopes.append(_Scope("class", _bound_here(node)))
        node.body = self._body(node.body)
        self.scopes.pop()
        return node

    def visit_Name(self, node):
        node.id = self._resolve(node.id)[0]
        return node

    def visit_Attribute(self, node):
        chain, root = [], node
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        if isinstance(root, ast.Name):
            path, is_import = self._resolve(root.id)
            if is_import:  # torch.nn.functional.silu, F.silu and `silu` imported from F become one name
                return ast.Name(id=".".join([path, *reversed(chain)]), ctx=node.ctx)
        node.value = self.visit(node.value)
        node.attr = self._attr(node.attr)
        return node

    def visit_Call(self, node):
        params = self._callee_params(node.func)
        first = node.args[0] if node.args else None
        node = self.generic_visit(node)
        for kw in node.keywords:
            if kw.arg in params:
                kw.arg = f"v1_{params.index(kw.arg)}"
        if isinstance(node.func, ast.Attribute) and node.func.attr in _REGISTER:
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                first.value = self._attr(first.value)
        return node

    def _callee_params(self, func: ast.expr) -> list[str]:
        # Only module-level functions and methods of module-level classes (parameter depth 1).
        if isinstance(func, ast.Name):
            return self.callables.get(func.id, [])
        if isinstance(func, ast.Attribute) and not func.attr.startswith("__"):
            root = func
            while isinstance(root, ast.Attribute):
                root = root.value
            if not (isinstance(root, ast.Name) and root.id in self.imports):
                return self.methods.get(func.attr, [])
        return []

    def visit_Global(self, node):
        node.names = [self._resolve(n)[0] for n in node.names]
        return node

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self._resolve(node.name)[0]
        return self.generic_visit(node)

    def visit_Expr(self, node):
        # A bare string statement (docstring or block comment) does nothing.
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is None:
            return None
        return self.visit(ast.Assign(targets=[node.target], value=node.value))

    def _drop(self, node):
        # Imports: every use of an imported name already carries its full module path. pass: a no-op.
        return None

    visit_Import = visit_ImportFrom = visit_Pass = _drop


def normalized_hash(source: str) -> str:
    """sha256 (hex) of the canonicalised AST. Raises SyntaxError for code that does not parse."""
    return normalized_tree_hash(ast.parse(source))


def normalized_tree_hash(tree: ast.Module) -> str:
    """`normalized_hash` of a module the caller has parsed already (its syntax check), which this
    rewrites in place: parsing is about a third of the cost."""
    tree.body = _Canonicalizer(tree)._body(tree.body)
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


