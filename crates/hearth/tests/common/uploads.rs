//! What clients upload, built in the test: zips and tgzs of given entries, and multipart
//! bodies as the cf CLI writes them.

use std::io::Write;

/// A zip of `(path, content)` files (mode 0644), stored without compression when `stored`
/// (so its size is what the test asks for).
pub fn zip_of(entries: &[(&str, &[u8])], stored: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if stored { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
    for (path, content) in entries {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o644).compression_method(method);
        zip.start_file(*path, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A zip of `(path, mode, content)` files, as an app's or buildpack's directory is zipped.
pub fn zip_with_modes<C: AsRef<[u8]>>(entries: &[(&str, u32, C)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, mode, content) in entries {
        zip.start_file(*path, zip::write::SimpleFileOptions::default().unix_permissions(*mode)).unwrap();
        zip.write_all(content.as_ref()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A droplet tgz in CF's layout: `app/` holding `(name, content)` files.
pub fn droplet_tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "app/", std::io::empty()).unwrap();
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        tar.append_data(&mut h, format!("app/{name}"), *content).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Bytes that no compressor shrinks (a xorshift stream), so an archive of them is as large.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A multipart body of `(field, filename, content)` parts: (content type, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "hearth-test-boundary-51f0";
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").unwrap();
        if let Some(f) = filename {
            write!(body, "; filename=\"{f}\"\r\nContent-Type: application/octet-stream").unwrap();
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}
