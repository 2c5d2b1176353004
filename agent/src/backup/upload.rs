//! A snapshot on its way from etcd to S3: checked as it streams (etcd's SHA-256 trailer) and
//! uploaded as it comes, one part uploading while the next is read, so that memory stays
//! bounded by two parts whatever the snapshot's size. A snapshot that ends smaller than a part is one PutObject; a larger one
//! is a multipart upload, completed only after the trailer checked out and aborted on any
//! failure: a reader never sees a partial or corrupt `snapshot.db`.

use sha2::{Digest, Sha256};

use crate::aws::{Aws, AwsError};

/// etcd ends a snapshot stream with the SHA-256 of everything before it.
const TRAILER: usize = 32;

/// Where the chunks of a snapshot come from (etcd's maintenance stream; a test's bytes).
pub trait ChunkSource {
    /// The next chunk; `None` at the end. The error names where the chunks come from.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = anyhow::Result<Option<Vec<u8>>>> + Send;
}

impl ChunkSource for crate::etcd::client::SnapshotStream {
    async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(crate::etcd::client::SnapshotStream::next_chunk(self).await?)
    }
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("reading the snapshot stream")]
    Source(#[source] anyhow::Error),
    #[error("the snapshot is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("uploading s3://{bucket}/{key}")]
    S3 {
        bucket: String,
        key: String,
        #[source]
        source: AwsError,
    },
}

/// What was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub size: u64,
    /// Hex SHA-256 of the whole object.
    pub sha256: String,
    /// Parts of a multipart upload; 0 for a single PutObject.
    pub parts: u32,
}

/// Checks etcd's trailer while the bytes go by, holding back only the last 32.
#[derive(Default)]
pub struct TrailerCheck {
    /// SHA-256 of everything but the last 32 bytes seen so far.
    body: Sha256,
    /// SHA-256 of everything.
    whole: Sha256,
    tail: Vec<u8>,
    size: u64,
}

impl TrailerCheck {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.whole.update(chunk);
        self.size += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > TRAILER {
            let spill = self.tail.len() - TRAILER;
            self.body.update(&self.tail[..spill]);
            self.tail.drain(..spill);
        }
    }

    /// At the end: `(size, hex SHA-256 of the whole)` when the trailer matches.
    pub fn finish(self) -> Result<(u64, String), &'static str> {
        if self.tail.len() < TRAILER {
            return Err("it is shorter than etcd's 32-byte SHA-256 trailer");
        }
        if self.body.finalize().as_slice() != self.tail.as_slice() {
            return Err("its SHA-256 trailer does not match its contents");
        }
        Ok((self.size, hex::encode(self.whole.finalize())))
    }
}

/// Streams `source` to `s3://bucket/key` in parts of `part_size` bytes (at least S3's 5 MiB).
/// One part uploads while the next is read: memory holds at most two parts and a chunk.
pub async fn upload(
    aws: &Aws,
    bucket: &str,
    key: &str,
    source: &mut impl ChunkSource,
    part_size: usize,
) -> Result<Uploaded, UploadError> {
    let s3 = |source| UploadError::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
        source,
    };
    let mut check = TrailerCheck::default();
    let mut buffer: Vec<u8> = Vec::new();
    let mut multipart: Option<Multipart> = None;
    let outcome: Result<(), UploadError> = async {
        while let Some(chunk) = source.next_chunk().await.map_err(UploadError::Source)? {
            check.feed(&chunk);
            buffer.extend_from_slice(&chunk);
            // Keep the last part back until the end: it must not be empty, and a corrupt
            // snapshot is found before the part that would complete it.
            while buffer.len() > part_size {
                // A new buffer of a part's size, not one grown by doubling.
                let mut part =
                    std::mem::replace(&mut buffer, Vec::with_capacity(part_size + chunk.len()));
                buffer.extend_from_slice(&part[part_size..]);
                part.truncate(part_size);
                let upload = match &mut multipart {
                    Some(m) => m,
                    None => multipart.insert(Multipart::new(
                        aws.create_multipart(bucket, key).await.map_err(s3)?,
                    )),
                };
                upload.settle().await.map_err(s3)?;
                upload.start(aws, bucket, key, part);
            }
        }
        Ok(())
    }
    .await;
    let checked = outcome.and_then(|()| {
        std::mem::take(&mut check)
            .finish()
            .map_err(UploadError::Corrupt)
    });
    let (size, sha256) = match checked {
        Ok(done) => done,
        Err(e) => {
            if let Some(m) = multipart {
                m.abort(aws, bucket, key).await;
            }
            return Err(e);
        }
    };
    match multipart {
        None => {
            aws.put_object(bucket, key, buffer).await.map_err(s3)?;
            Ok(Uploaded {
                size,
                sha256,
                parts: 0,
            })
        }
        Some(mut m) => {
            let finished: Result<(), AwsError> = async {
                m.settle().await?;
                m.start(aws, bucket, key, buffer);
                m.settle().await?;
                aws.complete_multipart(bucket, key, &m.id, &m.parts).await
            }
            .await;
            if let Err(e) = finished {
                m.abort(aws, bucket, key).await;
                return Err(s3(e));
            }
            Ok(Uploaded {
                size,
                sha256,
                parts: m.parts.len() as u32,
            })
        }
    }
}

/// A multipart upload under way: the parts done, and the one uploading.
struct Multipart {
    id: String,
    parts: Vec<(i32, String)>,
    in_flight: Option<(i32, tokio::task::JoinHandle<Result<String, AwsError>>)>,
}

impl Multipart {
    fn new(id: String) -> Self {
        Multipart {
            id,
            parts: Vec::new(),
            in_flight: None,
        }
    }

    /// Starts uploading the next part (the one before must be settled).
    fn start(&mut self, aws: &Aws, bucket: &str, key: &str, part: Vec<u8>) {
        debug_assert!(self.in_flight.is_none());
        let number = self.parts.len() as i32 + 1;
        let (aws, bucket, key, id) = (
            aws.clone(),
            bucket.to_string(),
            key.to_string(),
            self.id.clone(),
        );
        let task =
            tokio::spawn(async move { aws.upload_part(&bucket, &key, &id, number, part).await });
        self.in_flight = Some((number, task));
    }

    /// Waits for the part uploading, if any, and records its ETag.
    async fn settle(&mut self) -> Result<(), AwsError> {
        let Some((number, task)) = self.in_flight.take() else {
            return Ok(());
        };
        let etag = task.await.map_err(|e| AwsError::Api {
            operation: "UploadPart",
            code: None,
            source: Box::new(e),
        })??;
        self.parts.push((number, etag));
        tracing::debug!(part = number, "uploaded a snapshot part");
        Ok(())
    }

    /// Stops the part uploading and aborts the upload.
    async fn abort(mut self, aws: &Aws, bucket: &str, key: &str) {
        if let Some((_, task)) = self.in_flight.take() {
            task.abort();
            let _ = task.await;
        }
        abort(aws, bucket, key, &self.id).await;
    }
}

/// Aborts a multipart upload, logging (not returning) a failure: the error that led here is the
/// one to report, and the bucket's lifecycle rule removes an upload left behind.
async fn abort(aws: &Aws, bucket: &str, key: &str, id: &str) {
    match aws.abort_multipart(bucket, key, id).await {
        Ok(()) => tracing::info!(key, "aborted the multipart upload"),
        Err(e) => tracing::warn!(
            key,
            error = %crate::exit::one_line(&e),
            "could not abort the multipart upload; the bucket's lifecycle rule for incomplete uploads removes it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(body: &[u8]) -> Vec<u8> {
        let mut out = body.to_vec();
        out.extend_from_slice(&Sha256::digest(body));
        out
    }

    #[test]
    fn the_trailer_is_checked_across_any_chunking() {
        let good = snapshot(&[7u8; 1000]);
        for size in [1, 5, 31, 32, 33, 100, 2000] {
            let mut check = TrailerCheck::default();
            for chunk in good.chunks(size) {
                check.feed(chunk);
            }
            let (n, sha) = check.finish().unwrap();
            assert_eq!(n, good.len() as u64);
            assert_eq!(sha, hex::encode(Sha256::digest(&good)));
        }
        let mut bad = good.clone();
        bad[10] ^= 1;
        let mut check = TrailerCheck::default();
        check.feed(&bad);
        assert!(check.finish().is_err());
        let mut short = TrailerCheck::default();
        short.feed(&[1; 31]);
        assert!(short.finish().is_err());
    }
}
