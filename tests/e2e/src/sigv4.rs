//! AWS Signature Version 4, checked the way AWS checks it, for the mock's
//! Bedrock: the canonical request (method, the path with each segment
//! URI-encoded again as for every service but S3, the sorted query, the signed
//! headers with trimmed values, the payload hash), the string to sign, the
//! signing key derived from the secret, date, region and service, and the
//! HMAC-SHA256 signature. botocore, AWS's own signer, checks this module in
//! `tests/sigv4.rs`.

use sha2::{Digest, Sha256};

/// The IAM credentials the mock's Bedrock accepts.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Why AWS would refuse a signed request: its `x-amzn-errortype` and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub error_type: &'static str,
    pub message: String,
}

fn refuse(error_type: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { error_type, message: message.into() }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    pub fn parse(header: &str) -> Option<Authorization> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let field = |name: &str| {
            rest.split(',').map(str::trim).find_map(|f| f.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
        };
        let credential = field("Credential")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
            return None;
        };
        Some(Authorization {
            access_key_id: key.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            signed_headers: field("SignedHeaders")?.split(';').map(str::to_owned).collect(),
            signature: field("Signature")?,
        })
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// A path segment URI-encoded as SigV4 asks: unreserved characters kept,
/// every other byte (`%` included) as `%XX`.
fn uri_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The canonical URI of every service but S3: the path as sent, dot segments
/// resolved, each segment encoded once more (`%3A` becomes `%253A`).
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.iter().map(|s| uri_encode(s)).collect::<Vec<_>>().join("/"))
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request for what arrived, over `auth`'s signed headers.
pub fn canonical_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    signed: &[String],
    payload_hash: &str,
) -> String {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut canonical_headers = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    [method, &canonical_uri(path), &canonical_query(query), &canonical_headers, &signed.join(";"), payload_hash]
        .join("\n")
}

/// The signature of `canonical` with the secret, for the request's scope.
pub fn signature(secret: &str, amz_date: &str, auth: &Authorization, canonical: &str) -> String {
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [auth.region.as_str(), auth.service.as_str(), "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex(&hmac_sha256(&key, to_sign.as_bytes()))
}

/// Checks a request as Bedrock would, for `credentials` in `region`.
pub fn verify(
    credentials: &AwsCredentials,
    region: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), Refusal> {
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let auth = header("authorization")
        .and_then(Authorization::parse)
        .ok_or_else(|| refuse("IncompleteSignatureException", "Authorization header requires AWS4-HMAC-SHA256"))?;
    if auth.access_key_id != credentials.access_key_id {
        return Err(refuse("UnrecognizedClientException", "The security token included in the request is invalid."));
    }
    if (auth.region.as_str(), auth.service.as_str()) != (region, "bedrock") {
        return Err(refuse("InvalidSignatureException", format!("Credential should be scoped to {region}/bedrock")));
    }
    let amz_date = header("x-amz-date").unwrap_or_default();
    if !amz_date.starts_with(&auth.date) || amz_date.len() != 16 {
        return Err(refuse("IncompleteSignatureException", "x-amz-date is missing or not the credential's date"));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(refuse("InvalidSignatureException", format!("'{required}' must be a signed header")));
        }
    }
    if let Some(token) = &credentials.session_token {
        let signed = auth.signed_headers.iter().any(|h| h == "x-amz-security-token");
        if header("x-amz-security-token") != Some(token.as_str()) || !signed {
            return Err(refuse(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
    }
    let payload = sha256_hex(body);
    let claimed = header("x-amz-content-sha256").unwrap_or(&payload);
    if claimed != payload {
        return Err(refuse("InvalidSignatureException", "x-amz-content-sha256 does not match the body"));
    }
    let canonical = canonical_request(method, path, headers, &auth.signed_headers, claimed);
    if signature(&credentials.secret_access_key, amz_date, &auth, &canonical) != auth.signature {
        return Err(refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block.
        let mac = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex(&mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    /// AWS's documented example (IAM ListUsers, "Create a signed request").
    #[test]
    fn aws_documentation_example() {
        let headers: Vec<(String, String)> = [
            ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let signed: Vec<String> = ["content-type", "host", "x-amz-date"].iter().map(|s| s.to_string()).collect();
        let canonical =
            canonical_request("GET", "/?Action=ListUsers&Version=2010-05-08", &headers, &signed, &sha256_hex(b""));
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let auth = Authorization {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
            signed_headers: signed,
            signature: String::new(),
        };
        let sig = signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830T123600Z", &auth, &canonical);
        assert_eq!(sig, "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    }

    #[test]
    fn every_service_but_s3_encodes_the_path_again() {
        assert_eq!(
            canonical_uri("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke"
        );
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("/"), "/");
    }

    #[test]
    fn authorization_headers_parse() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc";
        let a = Authorization::parse(h).unwrap();
        assert_eq!((a.access_key_id.as_str(), a.region.as_str(), a.service.as_str()), ("AKID", "us-east-1", "bedrock"));
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(Authorization::parse("Bearer abc").is_none());
    }
}
