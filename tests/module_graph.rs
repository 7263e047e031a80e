//! usher's top-level modules form no cycle (issue #11): reading the crate from `src/lib.rs` along
//! its `mod` declarations, every `crate::<module>` a module names outside test code is an edge,
//! and the graph of those edges must have no strongly connected set of two or more modules. A
//! failure names the cycle and the line behind each of its edges.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

/// module → module it uses → where (file:line), one example per edge.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = crate_graph();
    // The reading must see the crate's real wiring, or a missing edge would hide a cycle.
    for (from, to) in [
        ("serve", "app"),
        ("trigger", "app"),
        ("control", "enforce"),
        ("decision", "policy"),
        ("cli", "publish"),
    ] {
        assert!(
            graph.get(from).is_some_and(|uses| uses.contains_key(to)),
            "{from} -> {to} not found: the reading of src/ is broken"
        );
    }
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "{}", describe(&graph, &cycles));
    println!("{}", render(&graph));
}

#[test]
fn a_planted_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    let mut edge = |a: &str, b: &str| {
        graph
            .entry(a.into())
            .or_default()
            .insert(b.into(), format!("{a}.rs:1"));
    };
    edge("app", "cache");
    edge("cache", "config");
    edge("config", "app");
    edge("trigger", "app");
    let cycles = cycles(&graph);
    assert_eq!(cycles, vec![vec!["app", "cache", "config"]]);
    let text = describe(&graph, &cycles);
    assert!(text.contains("config -> app (config.rs:1)"), "{text}");
}

#[test]
fn test_code_and_comments_are_not_edges() {
    let source = r#"
        //! crate::app in a comment
        use crate::cache::Thing;
        #[cfg(test)]
        fn helper() { crate::control::x(); }
        impl Thing {
            #[cfg(test)]
            pub fn only_in_tests(&self) { crate::fleet::y() }
            pub fn real(&self) { tracing::info!("{}", crate::metrics::z()); }
        }
        use crate::{config, spec::{A, B}};
        #[cfg(test)]
        mod tests { use crate::serve; }
    "#;
    let file = syn::parse_file(source).unwrap();
    let mut found = BTreeMap::new();
    uses_in(&strip_test_code(file.items), "x.rs", &mut found);
    let names: Vec<_> = found.keys().map(String::as_str).collect();
    assert_eq!(names, ["cache", "config", "metrics", "spec"]);
}

/// Reads the crate from `src/lib.rs` along its non-test `mod` declarations.
fn crate_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = parse(&src.join("lib.rs"));
    let tops: Vec<String> = declared_modules(&lib.items)
        .into_iter()
        .map(|d| d.name)
        .collect();
    let mut graph = Graph::new();
    for top in &tops {
        let mut files = Vec::new();
        let (file, dir) = module_file(&src, top);
        module_files(file, &dir, &mut files);
        let uses = graph.entry(top.clone()).or_default();
        for file in files {
            let parsed = parse(&file);
            let shown = file
                .strip_prefix(&src)
                .unwrap_or(&file)
                .display()
                .to_string();
            let mut found = BTreeMap::new();
            uses_in(&strip_test_code(parsed.items), &shown, &mut found);
            for (to, at) in found {
                if &to != top && tops.contains(&to) {
                    uses.entry(to).or_insert(at);
                }
            }
        }
    }
    graph
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A `mod x;` declaration: its name and its `#[path]`, if any.
struct Declared {
    name: String,
    path: Option<String>,
}

/// The non-test `mod x;` declarations among `items` (inline modules are read in place).
fn declared_modules(items: &[syn::Item]) -> Vec<Declared> {
    items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() && !is_test_only(&m.attrs) => Some(Declared {
                name: m.ident.to_string(),
                path: m.attrs.iter().find_map(path_attr),
            }),
            _ => None,
        })
        .collect()
}

/// The value of a `#[path = "…"]` attribute.
fn path_attr(attr: &syn::Attribute) -> Option<String> {
    let syn::Meta::NameValue(nv) = &attr.meta else {
        return None;
    };
    match &nv.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) if nv.path.is_ident("path") => Some(s.value()),
        _ => None,
    }
}

/// `file`, the file of a module, then the files of its non-test submodules, which live in
/// `children_dir` (or, with `#[path]`, beside `file`).
fn module_files(file: PathBuf, children_dir: &Path, out: &mut Vec<PathBuf>) {
    let children = declared_modules(&parse(&file).items);
    let beside = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    out.push(file);
    for child in children {
        if let Some(path) = child.path {
            let file = beside.join(path);
            let dir = file.with_extension("");
            module_files(file, &dir, out);
            continue;
        }
        let (file, dir) = module_file(children_dir, &child.name);
        module_files(file, &dir, out);
    }
}

/// Where module `name` declared for `dir` lives (`dir/name.rs` or `dir/name/mod.rs`), and the
/// directory of its own submodules.
fn module_file(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let flat = dir.join(format!("{name}.rs"));
    let own = dir.join(name);
    let file = if flat.exists() {
        flat
    } else {
        own.join("mod.rs")
    };
    (file, own)
}

/// Whether the attributes hold `#[cfg(test)]`.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

/// `items` without the ones compiled for tests only, also inside modules, impls and traits.
fn strip_test_code(items: Vec<syn::Item>) -> Vec<syn::Item> {
    items
        .into_iter()
        .filter_map(|item| match item {
            syn::Item::Mod(mut m) => {
                if is_test_only(&m.attrs) {
                    return None;
                }
                if let Some((brace, inner)) = m.content.take() {
                    m.content = Some((brace, strip_test_code(inner)));
                }
                Some(syn::Item::Mod(m))
            }
            syn::Item::Impl(mut i) => {
                if is_test_only(&i.attrs) {
                    return None;
                }
                i.items.retain(|item| match item {
                    syn::ImplItem::Fn(f) => !is_test_only(&f.attrs),
                    syn::ImplItem::Const(c) => !is_test_only(&c.attrs),
                    syn::ImplItem::Type(t) => !is_test_only(&t.attrs),
                    _ => true,
                });
                Some(syn::Item::Impl(i))
            }
            syn::Item::Trait(mut t) => {
                if is_test_only(&t.attrs) {
                    return None;
                }
                t.items.retain(|item| match item {
                    syn::TraitItem::Fn(f) => !is_test_only(&f.attrs),
                    _ => true,
                });
                Some(syn::Item::Trait(t))
            }
            other => {
                let attrs = match &other {
                    syn::Item::Const(x) => &x.attrs,
                    syn::Item::Enum(x) => &x.attrs,
                    syn::Item::Fn(x) => &x.attrs,
                    syn::Item::Static(x) => &x.attrs,
                    syn::Item::Struct(x) => &x.attrs,
                    syn::Item::Type(x) => &x.attrs,
                    syn::Item::Use(x) => &x.attrs,
                    syn::Item::Macro(x) => &x.attrs,
                    _ => return Some(other),
                };
                (!is_test_only(attrs)).then_some(other)
            }
        })
        .collect()
}

/// Every `crate::<module>` in the tokens of `items` — paths, `use` trees (`crate::{a, b::c}`),
/// macro bodies and attributes alike; comments are not tokens.
fn uses_in(items: &[syn::Item], file: &str, found: &mut BTreeMap<String, String>) {
    let mut tokens = TokenStream::new();
    for item in items {
        item.to_tokens(&mut tokens);
    }
    scan(tokens, file, found);
}

fn scan(tokens: TokenStream, file: &str, found: &mut BTreeMap<String, String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(g) => scan(g.stream(), file, found),
            TokenTree::Ident(ident) if ident == "crate" && is_path_sep(&trees[i + 1..]) => {
                let at = format!("{file}:{}", ident.span().start().line);
                match trees.get(i + 3) {
                    Some(TokenTree::Ident(name)) => {
                        found.entry(name.to_string()).or_insert(at);
                    }
                    Some(TokenTree::Group(group)) => {
                        for name in group_heads(group.stream()) {
                            found.entry(name).or_insert_with(|| at.clone());
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Whether the tokens start with `::`.
fn is_path_sep(rest: &[TokenTree]) -> bool {
    matches!(
        rest,
        [TokenTree::Punct(a), TokenTree::Punct(b), ..] if a.as_char() == ':' && b.as_char() == ':'
    )
}

/// The first name of each comma-separated part of a `use` group.
fn group_heads(tokens: TokenStream) -> Vec<String> {
    let mut heads = Vec::new();
    let mut at_start = true;
    for tree in tokens {
        match tree {
            TokenTree::Punct(p) if p.as_char() == ',' => at_start = true,
            TokenTree::Ident(ident) if at_start => {
                heads.push(ident.to_string());
                at_start = false;
            }
            _ => at_start = false,
        }
    }
    heads
}

/// The strongly connected sets of two or more modules (Tarjan), each sorted, sorted.
fn cycles(graph: &Graph) -> Vec<Vec<&str>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<&'a str>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|uses| uses.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut set = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    set.push(w);
                    if w == v {
                        break;
                    }
                }
                if set.len() > 1 {
                    set.sort_unstable();
                    self.found.push(set);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found.sort();
    walk.found
}

/// Each cycle's modules with the edges between them and where each edge is.
fn describe(graph: &Graph, cycles: &[Vec<&str>]) -> String {
    let mut out = String::from("module cycles (move what both sides need below both):\n");
    for set in cycles {
        out.push_str(&format!("  {}\n", set.join(", ")));
        for from in set {
            for (to, at) in &graph[*from] {
                if set.contains(&to.as_str()) {
                    out.push_str(&format!("    {from} -> {to} ({at})\n"));
                }
            }
        }
    }
    out
}

/// The graph as "module: uses", for the closing note (`cargo test --test module_graph -- --nocapture`).
fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, uses)| {
            let names: Vec<_> = uses.keys().map(String::as_str).collect();
            format!("{from}: {}", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
