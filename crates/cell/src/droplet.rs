//! A Cloud Foundry droplet tgz (`app/`, `deps/`, `profile.d/`, `staging_info.yml`) as a
//! layer in the image store: its entries moved under `home/vcap/` and owned by the id the
//! store writes for `vcap` in an instance (the host id root's containers map it to; `vcap`
//! itself in a rootless store, which unpacks in its containers' user namespace). The conversion is a pure function of the tgz, so staging
//! (which makes its layer this way too), an upload, a copy and a re-import after a lost
//! image store all give one droplet the same layer digest.
//!
//! The tgz is expected to have passed the blobstore's safe extraction already (uploads
//! do); this still refuses entries that are not files, directories or links, and names
//! that are absolute or climb with `..`. Blocking: call from `spawn_blocking`.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use hearth_images::Digest;

/// CF's `vcap` user inside an instance.
const VCAP: (u32, u32) = (2000, 2000);

/// Imports the droplet tgz at `tgz` into `images`; answers the layer's digest (its diff id).
/// `work_dir` holds the uncompressed layer while it is imported.
pub fn import(images: &hearth_images::Store, tgz: &Path, work_dir: &Path) -> anyhow::Result<Digest> {
    std::fs::create_dir_all(work_dir).with_context(|| format!("cannot make {}", work_dir.display()))?;
    let layer = tempfile_in(work_dir)?;
    let result = layer_of(tgz, &layer, vcap_owner(images)).and_then(|()| {
        let file = std::fs::File::open(&layer)?;
        Ok(images.import_layer(file).context("cannot store the droplet layer")?.diff_id)
    });
    let _ = std::fs::remove_file(&layer);
    result
}

fn tempfile_in(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(dir.join(format!("droplet-layer-{}.tar", uuid::Uuid::new_v4())))
}

/// The uid and gid a droplet layer's entries carry in `images`: what the store turns into
/// `vcap` inside an instance.
pub fn vcap_owner(images: &hearth_images::Store) -> (u32, u32) {
    if images.config().user_namespace.is_some() {
        return VCAP;
    }
    let map = hearth_containers::IdMap::default();
    (map.host_uid + VCAP.0, map.host_gid + VCAP.1)
}

/// Writes the layer tar for the droplet `tgz` to `out`, its entries owned by `owner`.
pub fn layer_of(tgz: &Path, out: &Path, owner: (u32, u32)) -> anyhow::Result<()> {
    let file = std::fs::File::open(tgz).with_context(|| format!("cannot open {}", tgz.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let mut layer = tar::Builder::new(std::fs::File::create(out)?);
    let (uid, gid) = (u64::from(owner.0), u64::from(owner.1));
    for dir in ["home/", "home/vcap/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_size(0);
        layer.append_data(&mut header, dir, std::io::empty())?;
    }
    for entry in archive.entries().context("the droplet is not a gzipped tar")? {
        let mut entry = entry.context("the droplet is not a gzipped tar")?;
        let Some(rel) = inside(&entry.path()?)? else { continue };
        let name = Path::new("home/vcap").join(&rel);
        let mut header = entry.header().clone();
        header.set_uid(uid);
        header.set_gid(gid);
        match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                layer.append_data(&mut header, &name, data.as_slice())?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name()?.context("a link without a target")?.into_owned();
                layer.append_link(&mut header, &name, &target)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name()?.context("a hard link without a target")?.into_owned();
                let Some(target) = inside(&target)? else { bail!("{} links to the droplet's root", rel.display()) };
                layer.append_link(&mut header, &name, Path::new("home/vcap").join(target))?;
            }
            other => bail!("{} is a {other:?}, which a droplet may not hold", rel.display()),
        }
    }
    layer.into_inner()?.sync_all()?;
    Ok(())
}

/// An entry's name relative to the droplet's root; `None` for the root itself.
fn inside(name: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut rel = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            _ => bail!("{} leaves the droplet", name.display()),
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn names(layer: &Path) -> Vec<String> {
        let mut a = tar::Archive::new(std::fs::File::open(layer).unwrap());
        a.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
    }

    #[test]
    fn a_droplet_moves_under_home_vcap_and_converts_the_same_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("d.tgz");
        std::fs::write(&src, tgz(&[("./app/run.sh", b"echo hi"), ("staging_info.yml", b"{}")])).unwrap();
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        layer_of(&src, &a, (102_000, 102_000)).unwrap();
        layer_of(&src, &b, (102_000, 102_000)).unwrap();
        assert_eq!(names(&a), ["home/", "home/vcap/", "home/vcap/app/run.sh", "home/vcap/staging_info.yml"]);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    #[test]
    fn a_name_leaving_the_droplet_is_refused() {
        assert!(inside(Path::new("app/../../etc")).is_err());
        assert!(inside(Path::new("/etc/passwd")).is_err());
        assert_eq!(inside(Path::new("./")).unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("d.tgz");
        std::fs::write(&src, b"not gzip").unwrap();
        assert!(layer_of(&src, &dir.path().join("x.tar"), VCAP).is_err());
    }
}
