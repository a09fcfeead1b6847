//! The "naive peer" for the load benchmarks (bench/load.sh, issue 15): what a user writing
//! the obvious secret server gets. actix-web, `jsonwebtoken` to check the HS256 token
//! (expiry validated), six items built from the claims and serialised with serde_json in
//! envoi's answer format (`{"secrets":[{"type":"ENV","key":…,"value":…},…,{"type":"FILE",
//! "path":…,"data":…,"permissions":{…}}]}`); no policy, no audit line, no logging, no metrics. A bad or
//! missing token gets 401.
//!
//! Usage: naive ADDRESS SECRET [WORKERS] [--tls CERT KEY]
//! With `--tls`, HTTPS with envoi's own rustls configuration (`envoi::tls::CertStore`).

#[path = "support/peer.rs"]
mod peer;

use actix_web::{http::header, web, App, HttpRequest, HttpResponse, HttpServer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claims {
    project_id: String,
    nf_object_id: String,
    nf_object_type: String,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Item {
    #[serde(rename = "ENV")]
    Env { key: &'static str, value: String },
    #[serde(rename = "FILE")]
    File {
        path: String,
        data: String,
        permissions: Permissions,
    },
}

#[derive(Serialize)]
struct Permissions {
    policy: &'static str,
    mode: &'static str,
}

#[derive(Serialize)]
struct Answer {
    secrets: Vec<Item>,
}

struct Keys {
    key: DecodingKey,
    validation: Validation,
}

async fn answer(request: HttpRequest, keys: web::Data<Keys>) -> HttpResponse {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return HttpResponse::Unauthorized().finish();
    };
    let claims = match jsonwebtoken::decode::<Claims>(token, &keys.key, &keys.validation) {
        Ok(data) => data.claims,
        Err(_) => return HttpResponse::Unauthorized().finish(),
    };
    // The six items envoi answers a workload of bench/gen_policy.py with, built here from
    // the claims alone.
    let answer = Answer {
        secrets: vec![
            Item::Env {
                key: "API_KEY",
                value: format!("key-{}-0ed904759531985d", claims.project_id),
            },
            Item::Env {
                key: "DATABASE_URL",
                value: format!(
                    "postgres://app:6513270e269e0d37f2a74de452e6b438@db:5432/{}",
                    claims.project_id
                ),
            },
            Item::Env {
                key: "LOG_LEVEL",
                value: "info".into(),
            },
            Item::Env {
                key: "SENTRY_DSN",
                value: "https://public@sentry.example/1".into(),
            },
            Item::Env {
                key: "SERVICE_NAME",
                value: claims.nf_object_id,
            },
            Item::File {
                path: format!("/etc/{}/tls.pem", claims.project_id),
                data: format!(
                    "-----BEGIN CERTIFICATE-----\nMII{}\n-----END CERTIFICATE-----\n",
                    claims.nf_object_type.repeat(8)
                ),
                permissions: Permissions {
                    policy: "AlwaysSet",
                    mode: "0400",
                },
            },
        ],
    };
    match serde_json::to_vec(&answer) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

fn main() -> std::io::Result<()> {
    let (positional, tls) = peer::split_tls("naive ADDRESS SECRET [WORKERS] [--tls CERT KEY]");
    let address = positional.first().cloned().unwrap_or_else(|| "127.0.0.1:18095".into());
    let Some(secret) = positional.get(1).cloned() else {
        eprintln!("usage: naive ADDRESS SECRET [WORKERS] [--tls CERT KEY]");
        std::process::exit(2);
    };
    let workers: usize = positional.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = true;
    let keys = web::Data::new(Keys {
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation,
    });
    actix_web::rt::System::new().block_on(async move {
        let mut server = HttpServer::new(move || App::new().app_data(keys.clone()).route("/", web::get().to(answer)));
        if workers > 0 {
            server = server.workers(workers);
        }
        match peer::tls_config(tls)? {
            Some(config) => server.bind_rustls_0_23(&address, config)?.run().await,
            None => server.bind(&address)?.run().await,
        }
    })
}
