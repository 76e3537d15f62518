//! The include graph of the templates, followed from each template a cadence renders:
//! a cycle, a fan-out into too many partials, or blocks nested too deep along a path
//! are found here, before anything is rendered.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::limits::{MAX_DEPTH, MAX_EACH};

/// More partial expansions than this for one template is a mistake, not a message.
pub(super) const MAX_EXPANSIONS: u64 = 10_000;

/// How deep a place is: blocks and partial includes around it, and `#each` blocks
/// among them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Level {
    pub depth: usize,
    pub each: usize,
}

/// A template, partial or inline partial.
pub(super) struct Node {
    /// The name people wrote: the partial's, or the inline partial's.
    pub label: String,
    pub inline: bool,
    pub file: PathBuf,
    pub sites: Vec<Site>,
    /// The deepest block of its own, and the deepest `#each`, with their places.
    pub deepest: (usize, (usize, usize)),
    pub deepest_each: (usize, (usize, usize)),
}

/// One `{{> name}}`: the nodes it may render, its place and how deep it sits.
pub(super) struct Site {
    pub targets: Vec<String>,
    pub at: (usize, usize),
    pub level: Level,
}

/// Why the graph cannot be rendered: the chain of names that leads back to itself
/// (with the place of its first include), the node that expands too many times, or
/// the node where the nesting goes too deep (with the place).
pub(super) enum Problem {
    Cycle {
        chain: Vec<String>,
        at: (usize, usize),
    },
    TooMany(String),
    TooDeep {
        node: String,
        at: (usize, usize),
    },
    TooManyEach {
        node: String,
        at: (usize, usize),
    },
}

/// What rendering a node costs at most: partial expansions, levels of nesting and of
/// `#each` nesting.
#[derive(Clone, Copy)]
pub(super) struct Cost {
    expansions: u64,
    depth: usize,
    each: usize,
}

/// Follows includes from `root`; `memo` keeps the costs of nodes already followed.
pub(super) fn check(
    root: &str,
    nodes: &BTreeMap<String, Node>,
    memo: &mut BTreeMap<String, Cost>,
) -> Option<Problem> {
    let mut chain = vec![root.to_owned()];
    cost(root, nodes, &mut chain, memo).err()
}

fn cost(
    name: &str,
    nodes: &BTreeMap<String, Node>,
    chain: &mut Vec<String>,
    memo: &mut BTreeMap<String, Cost>,
) -> Result<Cost, Problem> {
    if let Some(&c) = memo.get(name) {
        return Ok(c);
    }
    let Some(node) = nodes.get(name) else {
        // A partial that does not exist fails when rendered; `check` reports it then.
        return Ok(Cost {
            expansions: 0,
            depth: 0,
            each: 0,
        });
    };
    let mut total = Cost {
        expansions: 0,
        depth: node.deepest.0,
        each: node.deepest_each.0,
    };
    let (mut deep_at, mut each_at) = (node.deepest.1, node.deepest_each.1);
    for site in &node.sites {
        let mut most: u64 = 0;
        for child in &site.targets {
            if let Some(start) = chain.iter().position(|c| c == child) {
                let mut cycle = chain[start..].to_vec();
                cycle.push(child.clone());
                let at = nodes
                    .get(&cycle[0])
                    .and_then(|n| {
                        n.sites
                            .iter()
                            .find(|s| s.targets.contains(&cycle[1]))
                            .map(|s| s.at)
                    })
                    .unwrap_or(site.at);
                return Err(Problem::Cycle { chain: cycle, at });
            }
            chain.push(child.clone());
            let c = cost(child, nodes, chain, memo)?;
            chain.pop();
            most = most.max(c.expansions.saturating_add(1));
            if site.level.depth + 1 + c.depth > total.depth {
                total.depth = site.level.depth + 1 + c.depth;
                deep_at = site.at;
            }
            if site.level.each + c.each > total.each {
                total.each = site.level.each + c.each;
                each_at = site.at;
            }
        }
        total.expansions = total.expansions.saturating_add(most);
        if total.expansions > MAX_EXPANSIONS {
            return Err(Problem::TooMany(name.to_owned()));
        }
    }
    if total.depth > MAX_DEPTH {
        return Err(Problem::TooDeep {
            node: name.to_owned(),
            at: deep_at,
        });
    }
    if total.each > MAX_EACH {
        return Err(Problem::TooManyEach {
            node: name.to_owned(),
            at: each_at,
        });
    }
    memo.insert(name.to_owned(), total);
    Ok(total)
}
