//! Blobs go when nothing refers to them any more: packages and droplets are stored
//! content-addressed, so two rows may share one blob (a copied package, a re-uploaded
//! droplet); deleting a row releases its blob only once no other row names it. Called
//! after the rows are gone (a failure here leaves an unreferenced blob, never a row
//! without its blob).

use hearth_blobstore::Namespace;
use hearth_store::{self as store, Cond, Droplet, Package, Value as SqlValue};

use crate::ApiState;

/// Deletes each blob in `keys` that no package or droplet row names any more.
pub async fn release(state: &ApiState, keys: Vec<(Namespace, String)>) {
    for (ns, key) in keys {
        let conds = [Cond::Eq("blob_key", SqlValue::Text(key.clone()))];
        let still_named = match state.store.conn().await {
            Ok(mut conn) => match ns {
                Namespace::Packages => store::count::<Package>(&mut conn, &conds).await,
                Namespace::Droplets => store::count::<Droplet>(&mut conn, &conds).await,
                _ => Ok(1),
            },
            Err(e) => Err(e),
        };
        match still_named {
            Ok(0) => {
                if let Err(e) = state.blobs.delete(ns, &key).await {
                    tracing::warn!(?ns, %key, error = %e, "could not delete a blob nothing names");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(?ns, %key, error = %e, "could not tell whether a blob is still named"),
        }
    }
}

/// The blobs of an app's packages and droplets.
pub async fn of_app(conn: &mut store::Conn, app_guid: &str) -> store::Result<Vec<(Namespace, String)>> {
    let by_app = || vec![Cond::Eq("app_guid", SqlValue::Text(app_guid.to_string()))];
    let packages: Vec<Package> = store::find_all(conn, by_app()).await?;
    let droplets: Vec<Droplet> = store::find_all(conn, by_app()).await?;
    Ok(packages
        .into_iter()
        .filter_map(|p| p.blob_key.map(|k| (Namespace::Packages, k)))
        .chain(droplets.into_iter().filter_map(|d| d.blob_key.map(|k| (Namespace::Droplets, k))))
        .collect())
}
