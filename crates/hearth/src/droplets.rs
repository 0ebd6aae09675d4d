//! Droplet layers on this machine: the stager's import of an uploaded or copied droplet
//! tgz, and where the cell fetches the tgz of a droplet whose layer its image store lacks
//! (the blobstore, found by the layer the droplet's `execution_metadata` names).

use std::path::Path;

use hearth_blobstore::{BlobStore, Namespace};
use hearth_store::{self as store, Cond, Droplet, Store};

/// Finds a droplet's tgz by its layer and copies it out of the blobstore.
pub struct BlobDroplets {
    pub store: Store,
    pub blobs: BlobStore,
}

impl hearth_cell::rep::DropletSource for BlobDroplets {
    fn fetch<'a>(&'a self, layer: &'a str, dest: &'a Path) -> hearth_cell::rep::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            anyhow::ensure!(
                layer.starts_with("sha256:") && layer[7..].chars().all(|c| c.is_ascii_hexdigit()),
                "{layer} is not a layer digest"
            );
            let mut conn = self.store.conn().await?;
            let pattern = format!("%\"layer\":\"{layer}\"%");
            let found: Vec<Droplet> = store::find_all(
                &mut conn,
                vec![Cond::Sub("droplets.execution_metadata LIKE {}", vec![pattern]), Cond::NotNull("blob_key")],
            )
            .await?;
            drop(conn);
            let key = found
                .iter()
                .find_map(|d| d.blob_key.clone())
                .ok_or_else(|| anyhow::anyhow!("no droplet with layer {layer} has a tgz in the blobstore"))?;
            self.blobs.get_to_file(Namespace::Droplets, &key, dest).await?;
            Ok(())
        })
    }
}

/// Imports a droplet tgz as a layer of `node`'s image store; answers its digest.
pub async fn import(node: &hearth_cell::Node, tgz: &Path, work_dir: &Path) -> Result<String, String> {
    let (images, tgz, work_dir) = (node.images().clone(), tgz.to_path_buf(), work_dir.to_path_buf());
    tokio::task::spawn_blocking(move || hearth_cell::droplet::import(&images, &tgz, &work_dir))
        .await
        .map_err(|e| e.to_string())?
        .map(|d| d.to_string())
        .map_err(|e| format!("{e:#}"))
}
