use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestStack;

#[tokio::test]
async fn openapi_document_is_served_without_a_token_and_lists_every_command_collection() {
    let stack = TestStack::new().await;
    let server = stack.spawn(&["command-api"]).await;

    let response = reqwest::get(format!("{}/api/v1/openapi.json", server.url()))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for collection in ["accounts", "users", "quotes", "approvals", "contracts"] {
        let path = format!("/api/v1/{collection}/{{id}}");
        let body = &document["paths"][&path]["post"]["requestBody"];
        assert!(body.is_object(), "{path} is not documented");
    }
    let quotes = document["paths"]["/api/v1/quotes/{id}"]["post"].to_string();
    assert!(quotes.contains("#/components/schemas/SubmitQuote"));
    let submit = &document["components"]["schemas"]["SubmitQuote"];
    assert_eq!(submit["properties"]["type"]["const"], "SubmitQuote");
    assert!(document["components"]["securitySchemes"]["bearerAuth"].is_object());
    // What only process managers and timers send is not offered to clients.
    let schemas = &document["components"]["schemas"];
    for system in [
        "MarkQuoteApproved",
        "ExpireQuote",
        "ActivateAccount",
        "RequestApproval",
        "DraftContractFromQuote",
        "ExpireContract",
    ] {
        assert!(schemas.get(system).is_none(), "{system} is documented");
        assert!(!document["paths"].to_string().contains(system), "{system}");
    }
}
