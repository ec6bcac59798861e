//! Placement of shards on nodes by rendezvous (highest random weight) hashing: each shard
//! goes to the live node with the highest weight for it. Every node computes the same
//! answer from the same membership, the spread is even in expectation, and when a node
//! joins or leaves only the shards it gains or held move.

use sha2::{Digest, Sha256};

/// The weight of `node` for `shard`.
fn weight(node: &str, shard: i32) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(shard.to_le_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The node that should hold `shard` among `nodes` (`None` when there is none).
pub fn owner(shard: i32, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|n| (weight(n, shard), n.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::SHARDS;

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn placement(nodes: &[String]) -> Vec<String> {
        (0..SHARDS)
            .map(|s| owner(s, nodes).expect("a node").to_owned())
            .collect()
    }

    #[test]
    fn three_nodes_share_the_shards_about_evenly() {
        let n = nodes(&["node-a", "node-b", "node-c"]);
        let p = placement(&n);
        for node in &n {
            let count = p.iter().filter(|o| *o == node).count();
            // 85 each on average.
            assert!((60..=110).contains(&count), "{node}: {count}");
        }
    }

    #[test]
    fn a_joining_node_takes_shards_only_from_others_and_a_leaving_one_gives_only_its_own() {
        let three = nodes(&["node-a", "node-b", "node-c"]);
        let four = nodes(&["node-a", "node-b", "node-c", "node-d"]);
        let before = placement(&three);
        let after = placement(&four);
        let moved: Vec<_> = (0..SHARDS as usize)
            .filter(|&s| before[s] != after[s])
            .collect();
        assert!(moved.iter().all(|&s| after[s] == "node-d"));
        // About a quarter of the shards move, no more.
        assert!((40..=90).contains(&moved.len()), "{}", moved.len());
        // And back: only node-d's shards move when it leaves.
        let again = placement(&three);
        assert!((0..SHARDS as usize).all(|s| again[s] == before[s] || after[s] == "node-d"));
    }

    #[test]
    fn no_nodes_no_owner() {
        assert_eq!(owner(3, &[]), None);
    }
}
