//! The apply transaction's view of a batch's object writes (`sql.rs`, `apply_in`): the
//! `objects` table takes each object's net change, however many versions the batch gives it,
//! so an object written several times in one batch costs one row write there (its versions
//! all go to `object_versions`).

use super::ObjectWrite;
use crate::model::ObjectType;

/// New objects and updates, each by its last write.
pub(super) type NetWrites<'a> = (Vec<&'a ObjectWrite>, Vec<(&'a ObjectWrite, i64)>);

/// Each object's net change in a batch's `writes` (in the order of their first writes): the
/// state after its last write, and the version its first write expected. `.0` are new objects
/// (the first write expected none), `.1` updates with the version they replace. A write that
/// does not follow on from the one before it (its expected version is not what that one
/// wrote) is a conflict, as it would be row by row: its canonical id is the error.
pub(super) fn net_object_writes(writes: &[ObjectWrite]) -> Result<NetWrites<'_>, String> {
    use std::collections::HashMap;
    // Per object: (expected by its first write, its last write).
    let mut net: Vec<(Option<i64>, &ObjectWrite)> = Vec::with_capacity(writes.len());
    let mut at: HashMap<(ObjectType, &str), usize> = HashMap::with_capacity(writes.len());
    for w in writes {
        match at.entry((w.object_type, w.provider_id.as_str())) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let slot = &mut net[*e.get()];
                if w.expected_version != Some(slot.1.version) {
                    return Err(w.id.clone());
                }
                slot.1 = w;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(net.len());
                net.push((w.expected_version, w));
            }
        }
    }
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for (expected, last) in net {
        match expected {
            None => inserts.push(last),
            Some(v) => updates.push((last, v)),
        }
    }
    Ok((inserts, updates))
}

#[cfg(test)]
mod tests {
    use super::net_object_writes;
    use crate::model::{ObjectType, ReconStatus};
    use crate::store::ObjectWrite;

    fn write(id: &str, expected: Option<i64>, version: i64) -> ObjectWrite {
        ObjectWrite {
            object_type: ObjectType::Invoice,
            provider_id: id.to_owned(),
            id: format!("stripe:{id}"),
            expected_version: expected,
            version,
            status: ReconStatus::Pending,
            deleted: false,
            data_text: format!("{{\"v\":{version}}}"),
            content_hash: String::new(),
            order_key: version,
            tie_rank: 0,
            provider_updated_at: version,
            source: serde_json::Value::Null,
            reason: String::new(),
            findings: Vec::new(),
        }
    }

    #[test]
    fn an_object_written_several_times_takes_its_last_state_from_its_first_expectation() {
        let writes = [
            write("in_new", None, 1),
            write("in_old", Some(4), 5),
            write("in_new", Some(1), 2),
            write("in_old", Some(5), 5), // a status-only change
            write("in_new", Some(2), 3),
        ];
        let (inserts, updates) = net_object_writes(&writes).unwrap();
        assert_eq!(inserts.len(), 1);
        assert_eq!(
            (inserts[0].provider_id.as_str(), inserts[0].version),
            ("in_new", 3)
        );
        assert_eq!(updates.len(), 1);
        let (last, expected) = updates[0];
        assert_eq!(
            (last.provider_id.as_str(), last.version, expected),
            ("in_old", 5, 4)
        );
    }

    #[test]
    fn a_write_that_does_not_follow_on_from_the_one_before_is_a_conflict() {
        let writes = [write("in_1", Some(1), 2), write("in_1", Some(1), 2)];
        assert_eq!(net_object_writes(&writes).unwrap_err(), "stripe:in_1");
        let twice_new = [write("in_2", None, 1), write("in_2", None, 1)];
        assert_eq!(net_object_writes(&twice_new).unwrap_err(), "stripe:in_2");
    }
}
