//! Compressed backups: telling gzip and zstd from plain bytes by their magic numbers, and
//! reading a file through the matching streaming decoder (never whole in memory).

use std::path::Path;

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufRead, AsyncReadExt, BufReader};

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Plain,
    Gzip,
    Zstd,
}

impl Codec {
    /// The codec the first bytes of a file announce.
    pub fn sniff(head: &[u8]) -> Codec {
        if head.starts_with(&[0x1f, 0x8b]) {
            Codec::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Codec::Zstd
        } else {
            Codec::Plain
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Plain => "plain",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

/// A boxed reader of a file's decoded bytes.
pub type Decoded = Box<dyn AsyncBufRead + Unpin + Send>;

/// Opens `path` and returns its codec and a reader of its decoded bytes. A truncated or
/// corrupt compressed stream makes the reader fail (`UnexpectedEof` or `InvalidData`).
pub async fn open(path: &Path) -> std::io::Result<(Codec, Decoded)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        let read = file.read(&mut magic[n..]).await?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let codec = Codec::sniff(&magic[..n]);
    let file = tokio::fs::File::open(path).await?;
    let raw = BufReader::with_capacity(64 << 10, file);
    let reader: Decoded = match codec {
        Codec::Plain => Box::new(raw),
        Codec::Gzip => {
            let mut d = GzipDecoder::new(raw);
            d.multiple_members(true);
            Box::new(BufReader::new(d))
        }
        Codec::Zstd => {
            let mut d = ZstdDecoder::new(raw);
            d.multiple_members(true);
            Box::new(BufReader::new(d))
        }
    };
    Ok((codec, reader))
}

/// Decodes `path` to the end; returns the codec and the decoded size.
pub async fn check_to_end(path: &Path) -> std::io::Result<(Codec, u64)> {
    let (codec, mut reader) = open(path).await?;
    let n = tokio::io::copy_buf(&mut reader, &mut tokio::io::sink()).await?;
    Ok((codec, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
    use tokio::io::AsyncWriteExt;

    async fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzipEncoder::new(Vec::new());
        e.write_all(data).await.unwrap();
        e.shutdown().await.unwrap();
        e.into_inner()
    }

    /// With a content checksum, as the `zstd` tool writes by default: without one, a flipped
    /// byte may decode to other bytes unnoticed (the SHA-256 check catches it then).
    async fn zstd(data: &[u8]) -> Vec<u8> {
        use async_compression::{zstd::CParameter, Level};
        let params = [CParameter::checksum_flag(true)];
        let mut e = ZstdEncoder::with_quality_and_params(Vec::new(), Level::Default, &params);
        e.write_all(data).await.unwrap();
        e.shutdown().await.unwrap();
        e.into_inner()
    }

    async fn check(bytes: &[u8]) -> std::io::Result<(Codec, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        check_to_end(&p).await
    }

    #[tokio::test]
    async fn whole_streams_decode_and_cut_or_flipped_ones_fail() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for (codec, packed) in [
            (Codec::Gzip, gzip(&data).await),
            (Codec::Zstd, zstd(&data).await),
        ] {
            assert_eq!(check(&packed).await.unwrap(), (codec, data.len() as u64));
            let cut = &packed[..packed.len() - 9];
            assert!(check(cut).await.is_err(), "{codec:?} truncated");
            let mut flipped = packed.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x40;
            assert!(check(&flipped).await.is_err(), "{codec:?} flipped");
        }
        assert_eq!(check(b"plain").await.unwrap(), (Codec::Plain, 5));
    }
}
