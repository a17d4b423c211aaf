//! Where zkd's continuous backups go (`backup.target`): a directory, or a bucket of an
//! S3-compatible object store, both behind [`zk_log::backup::BackupStore`] so the shipper,
//! `zkcli backup verify` and `zkcli restore` work the same on either.
//!
//! A target is named as operators write it: `/mnt/backup/zk1` (or `file:///...`), or
//! `s3://bucket/prefix`. S3 settings come from [`S3Options`] (zoo.cfg `backup.s3.*`) and
//! otherwise from the usual `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`).

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};
use zk_log::backup::{BackupError, BackupStore, DirStore};

/// S3 settings that override the environment's.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// `http://127.0.0.1:9000` for MinIO, moto and friends; plain HTTP is allowed when the
    /// endpoint says so.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Opens the target `spec` names: `s3://bucket/prefix` or a directory.
pub fn open(spec: &str, s3: &S3Options) -> Result<Box<dyn BackupStore>, BackupError> {
    if let Some(rest) = spec.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BackupError::Unavailable {
                target: spec.to_owned(),
                reason: "no bucket: write s3://bucket/prefix".into(),
            });
        }
        return Ok(Box::new(S3Store::new(bucket, prefix, s3)?));
    }
    let path = spec.strip_prefix("file://").unwrap_or(spec);
    Ok(Box::new(DirStore::new(path)))
}

/// A bucket (and key prefix) of an S3-compatible store. Each call runs on the store's own
/// single-threaded runtime, so it is made from plain threads (the backup thread, zkcli).
pub struct S3Store {
    store: AmazonS3,
    prefix: String,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("url", &self.url).finish()
    }
}

impl S3Store {
    /// A store for `bucket` with keys under `prefix`.
    pub fn new(bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Store, BackupError> {
        let url = format!("s3://{bucket}/{prefix}");
        let unavailable = |reason: String| BackupError::Unavailable {
            target: url.clone(),
            reason,
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // A failed round is retried at the next interval: keep each call short.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(30))
                    .with_connect_timeout(Duration::from_secs(5)),
            );
        let endpoint = opts.endpoint.clone().or_else(|| {
            ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|k| std::env::var(k).ok())
        });
        if let Some(e) = &endpoint {
            builder = builder
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"));
        }
        let has_region = opts.region.is_some()
            || ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .any(|k| std::env::var(k).is_ok());
        builder = match &opts.region {
            Some(r) => builder.with_region(r),
            None if !has_region => builder.with_region("us-east-1"),
            None => builder,
        };
        if let Some(k) = &opts.access_key_id {
            builder = builder.with_access_key_id(k);
        }
        if let Some(s) = &opts.secret_access_key {
            builder = builder.with_secret_access_key(s);
        }
        let store = builder.build().map_err(|e| unavailable(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start an I/O runtime: {e}")))?;
        Ok(S3Store {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            url,
            runtime,
        })
    }

    fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn unavailable(&self, e: object_store::Error) -> BackupError {
        BackupError::Unavailable {
            target: self.url.clone(),
            reason: e.to_string(),
        }
    }
}

impl BackupStore for S3Store {
    fn check(&self) -> Result<(), BackupError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        self.runtime
            .block_on(self.store.list_with_delimiter(prefix.as_ref()))
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        // An S3 PUT replaces the object whole, and is durable once acknowledged.
        let payload = PutPayload::from(bytes.to_vec());
        self.runtime
            .block_on(self.store.put(&self.key(name), payload))
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
        let key = self.key(name);
        self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| self.unavailable(e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.unavailable(e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let dir = prefix.trim_end_matches('/');
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&self.key(dir))))
            .map_err(|e| self.unavailable(e))?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out: Vec<String> = listed
            .objects
            .into_iter()
            .filter_map(|o| o.location.as_ref().strip_prefix(&strip).map(str::to_owned))
            .filter(|n| n.starts_with(prefix))
            .collect();
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_named_as_operators_write_them() {
        let dir = open("/mnt/backup", &S3Options::default()).unwrap();
        assert_eq!(dir.describe(), "/mnt/backup");
        let dir = open("file:///mnt/b", &S3Options::default()).unwrap();
        assert_eq!(dir.describe(), "/mnt/b");
        let s3 = open(
            "s3://bucket/zk/one",
            &S3Options {
                endpoint: Some("http://127.0.0.1:1".into()),
                ..S3Options::default()
            },
        )
        .unwrap();
        assert_eq!(s3.describe(), "s3://bucket/zk/one");
        assert!(open("s3:///nobucket", &S3Options::default()).is_err());
    }

    #[test]
    fn an_unreachable_endpoint_is_unavailable_not_a_hang() {
        let s3 = open(
            "s3://bucket/p",
            &S3Options {
                endpoint: Some("http://127.0.0.1:9".into()),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
                ..S3Options::default()
            },
        )
        .unwrap();
        let started = std::time::Instant::now();
        match s3.check() {
            Err(BackupError::Unavailable { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
