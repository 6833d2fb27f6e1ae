use actix_web::HttpResponse;

/// `GET /api/v1/openapi.json`: public, so client generators can fetch it before signing in.
#[tracing::instrument]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document())
}
