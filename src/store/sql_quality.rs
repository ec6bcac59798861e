//! The SQL of [`super::QualityStore`] (findings listing, the reference index of the
//! cross-object checks), written once and expanded for each backend by [`sql_quality_store!`],
//! like `sql_operator.rs`: inside a child module of the backend's module, so the store is
//! named `super::SqliteStore` and its pools are in reach.

macro_rules! sql_quality_store {
    ($store:ty, $db:ty) => {
        mod quality_sql {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::model::ObjectType;
            use $crate::store::{
                CrossChecked, FindingQuery, FindingRecord, QualityStore, Referrer, StoreError,
            };

            /// Rows per multi-row statement (well under either backend's bind limit).
            const CHUNK: usize = 100;

            /// Appends `(object_type = ? AND provider_id = ? [AND code = ?]) OR …`.
            fn push_subjects<'a>(
                q: &mut QueryBuilder<'a, $db>,
                subjects: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)>,
            ) {
                q.push("(");
                for (i, (object_type, provider_id, code)) in subjects.enumerate() {
                    if i > 0 {
                        q.push(" OR ");
                    }
                    q.push("(object_type = ").push_bind(object_type);
                    q.push(" AND provider_id = ").push_bind(provider_id);
                    if let Some(code) = code {
                        q.push(" AND code = ").push_bind(code);
                    }
                    q.push(")");
                }
                q.push(")");
            }

            #[async_trait]
            impl QualityStore for $store {
                async fn quality_findings(
                    &self,
                    f: &FindingQuery,
                ) -> Result<Vec<FindingRecord>, StoreError> {
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT connection_id, object_type, provider_id, id, version, code, \
                         message, recorded_at FROM quality_findings WHERE merchant_id = ",
                    );
                    q.push_bind(f.merchant_id.clone());
                    if let Some(t) = f.object_type {
                        q.push(" AND object_type = ").push_bind(t.as_str());
                    }
                    if let Some(c) = &f.code {
                        q.push(" AND code = ").push_bind(c.clone());
                    }
                    if let Some(c) = &f.connection_id {
                        q.push(" AND connection_id = ").push_bind(c.clone());
                    }
                    if let Some(since) = f.since {
                        q.push(" AND recorded_at >= ").push_bind(since);
                    }
                    if let Some(k) = &f.after {
                        q.push(
                            " AND (recorded_at, connection_id, object_type, provider_id, \
                             version, code) > (",
                        );
                        q.push_bind(k.recorded_at);
                        q.push(", ").push_bind(k.connection_id.clone());
                        q.push(", ").push_bind(k.object_type.clone());
                        q.push(", ").push_bind(k.provider_id.clone());
                        q.push(", ").push_bind(k.version);
                        q.push(", ").push_bind(k.code.clone());
                        q.push(")");
                    }
                    q.push(
                        " ORDER BY recorded_at, connection_id, object_type, provider_id, \
                         version, code LIMIT ",
                    );
                    q.push_bind(f.limit);
                    Ok(q.build_query_as().fetch_all(&self.read).await?)
                }

                async fn referrers(
                    &self,
                    connection_id: &str,
                    target_ids: &[String],
                ) -> Result<Vec<Referrer>, StoreError> {
                    let mut out = Vec::new();
                    for chunk in target_ids.chunks(CHUNK * 5) {
                        let mut q = QueryBuilder::<$db>::new(
                            "SELECT DISTINCT r2.object_type, r2.provider_id, r2.target_id, r2.target_type \
                             FROM quality_references r1 JOIN quality_references r2 \
                             ON r2.connection_id = r1.connection_id \
                             AND r2.object_type = r1.object_type \
                             AND r2.provider_id = r1.provider_id \
                             WHERE r1.connection_id = ",
                        );
                        q.push_bind(connection_id.to_owned());
                        q.push(" AND r1.target_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(id.clone());
                        }
                        q.push(")");
                        out.extend(q.build_query_as::<Referrer>().fetch_all(&self.read).await?);
                    }
                    Ok(out)
                }

                async fn record_cross(
                    &self,
                    connection_id: &str,
                    merchant_id: &str,
                    checked: &[CrossChecked],
                    now: i64,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write.begin().await?;
                    for chunk in checked.chunks(CHUNK) {
                        let reindexed: Vec<&CrossChecked> =
                            chunk.iter().filter(|c| c.references.is_some()).collect();
                        if !reindexed.is_empty() {
                            let mut q = QueryBuilder::<$db>::new(
                                "DELETE FROM quality_references WHERE connection_id = ",
                            );
                            q.push_bind(connection_id).push(" AND ");
                            push_subjects(
                                &mut q,
                                reindexed
                                    .iter()
                                    .map(|c| (c.object_type.as_str(), c.provider_id.as_str(), None)),
                            );
                            q.build().execute(&mut *tx).await?;
                        }
                        let references: Vec<(&CrossChecked, &(ObjectType, String))> = reindexed
                            .iter()
                            .flat_map(|c| c.references.iter().flatten().map(move |r| (*c, r)))
                            .collect();
                        if !references.is_empty() {
                            let mut q = QueryBuilder::<$db>::new(
                                "INSERT INTO quality_references \
                                 (connection_id, target_id, target_type, object_type, provider_id) ",
                            );
                            q.push_values(&references, |mut row, (c, (kind, target))| {
                                row.push_bind(connection_id)
                                    .push_bind(target.as_str())
                                    .push_bind(kind.as_str())
                                    .push_bind(c.object_type.as_str())
                                    .push_bind(c.provider_id.as_str());
                            });
                            q.push(" ON CONFLICT DO NOTHING");
                            q.build().execute(&mut *tx).await?;
                        }
                        // Codes checked and no longer found: cleared on every version.
                        let cleared: Vec<(&str, &str, Option<&str>)> = chunk
                            .iter()
                            .flat_map(|c| {
                                c.codes
                                    .iter()
                                    .filter(|code| !c.findings.iter().any(|(f, _)| f == *code))
                                    .map(|code| {
                                        (c.object_type.as_str(), c.provider_id.as_str(), Some(*code))
                                    })
                            })
                            .collect();
                        if !cleared.is_empty() {
                            let mut q = QueryBuilder::<$db>::new(
                                "DELETE FROM quality_findings WHERE connection_id = ",
                            );
                            q.push_bind(connection_id).push(" AND ");
                            push_subjects(&mut q, cleared.into_iter());
                            q.build().execute(&mut *tx).await?;
                        }
                        let found: Vec<(&CrossChecked, &(&'static str, String))> = chunk
                            .iter()
                            .flat_map(|c| c.findings.iter().map(move |f| (c, f)))
                            .collect();
                        if !found.is_empty() {
                            let mut q = QueryBuilder::<$db>::new(
                                "INSERT INTO quality_findings (connection_id, object_type, \
                                 provider_id, version, id, merchant_id, code, message, \
                                 recorded_at) ",
                            );
                            q.push_values(&found, |mut row, (c, (code, message))| {
                                row.push_bind(connection_id)
                                    .push_bind(c.object_type.as_str())
                                    .push_bind(c.provider_id.as_str())
                                    .push_bind(c.version)
                                    .push_bind(c.id.as_str())
                                    .push_bind(merchant_id)
                                    .push_bind(*code)
                                    .push_bind(message.as_str())
                                    .push_bind(now);
                            });
                            q.push(
                                " ON CONFLICT (connection_id, object_type, provider_id, \
                                 version, code) DO UPDATE SET message = excluded.message",
                            );
                            q.build().execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}

pub(super) use sql_quality_store;
