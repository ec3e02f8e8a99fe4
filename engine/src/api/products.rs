//! Products (spec §2.3). Shard 0 owns them: it validates, logs, and replicates every change to
//! the other shards before answering.

use std::rc::Rc;

use http::StatusCode;
use protocol::model::{self, CreateProductRequest, Product, ProductSummary, UpdateProductRequest};
use shards::messages::{Reply, Request};
use shards::registry::records::{ProductKey, ProductRecord};

use super::query::{Page, Paging};
use crate::app::{now_ms, ApiRequest, ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

/// Length of a generated product id (hex), within the spec's 36.
const GENERATED_PRODUCT_ID_CHARS: usize = 24;

pub async fn create(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let body: CreateProductRequest = protocol::json::from_bytes(request.body)?;
    let now = now_ms();
    let generated_id = crate::random::hex(GENERATED_PRODUCT_ID_CHARS);
    let product = model::validate_create(body, &generated_id, &protocol::time::format_t1(now))?;
    // Check and insert with no await in between, so two concurrent creates cannot both pass.
    if app.shard.products().get(request.project_id, &product.product_id).is_some() {
        return Err(ApiError::ProductExists);
    }
    let record = ProductRecord {
        record_id: app.record_ids.next(now),
        project_id: request.project_id.to_owned(),
        product_id: product.product_id.clone(),
        product_json: String::from_utf8(protocol::json::to_vec(&product)).expect("JSON is UTF-8"),
    };
    app.shard.put_product(record).await?;
    Ok(ApiResponse::json(StatusCode::CREATED, &product))
}

pub fn list(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let paging = Paging::from_query(&request.query)?;
    let app_id = request.query.non_empty("app_id");
    let product_name = request.query.non_empty("product_name");
    let products = app.shard.products();
    let keep = |record: &ProductRecord| -> bool {
        let Ok(product) = parse(record) else { return false };
        app_id.as_deref().is_none_or(|a| a == product.app_id)
            && product_name.as_deref().is_none_or(|n| n == product.name)
    };
    let count = products.newest_below(request.project_id, u128::MAX, keep).count() as u64;
    let page: Vec<&ProductRecord> = products
        .newest_below(request.project_id, paging.marker, keep)
        .skip(paging.offset)
        .take(paging.limit)
        .collect();
    let summaries =
        page.iter().map(|r| parse(r).map(|p| ProductSummary::from(&p))).collect::<Result<Vec<_>, _>>()?;
    #[derive(serde::Serialize)]
    struct ListProducts {
        products: Vec<ProductSummary>,
        page: Page,
    }
    let page = Page::new(count, page.last().map(|r| r.record_id));
    Ok(ApiResponse::json(StatusCode::OK, &ListProducts { products: summaries, page }))
}

pub fn show(app: &Rc<App>, request: &ApiRequest<'_>, product_id: &str) -> ApiResult {
    let product = find(app, request.project_id, product_id)?.1;
    Ok(ApiResponse::json(StatusCode::OK, &product))
}

pub async fn update(app: &Rc<App>, request: &ApiRequest<'_>, product_id: &str) -> ApiResult {
    let body: UpdateProductRequest = protocol::json::from_bytes(request.body)?;
    let (record, existing) = find(app, request.project_id, product_id)?;
    let updated = model::apply_update(&existing, body)?;
    let record = ProductRecord {
        product_json: String::from_utf8(protocol::json::to_vec(&updated)).expect("JSON is UTF-8"),
        ..record
    };
    app.shard.put_product(record).await?;
    Ok(ApiResponse::json(StatusCode::OK, &updated))
}

pub async fn delete(app: &Rc<App>, request: &ApiRequest<'_>, product_id: &str) -> ApiResult {
    find(app, request.project_id, product_id)?;
    let project_id = request.project_id.to_owned();
    let replies = app
        .shard
        .call_all(|_| Request::CountDevicesOfProduct {
            project_id: project_id.clone(),
            product_id: product_id.to_owned(),
        })
        .await;
    let mut devices = 0;
    for reply in replies {
        match reply {
            Reply::Count(count) => devices += count,
            Reply::Failed(error) => return Err(error.into()),
            _ => return Err(ApiError::Unavailable("unexpected reply to a device count".into())),
        }
    }
    if devices > 0 {
        return Err(ApiError::Conflict(format!(
            "product '{product_id}' still has {devices} device(s); delete them first"
        )));
    }
    app.shard.delete_product(ProductKey { project_id, product_id: product_id.to_owned() }).await?;
    Ok(ApiResponse::no_content())
}

/// The product of this project, as record and as model.
pub fn find(app: &App, project_id: &str, product_id: &str) -> Result<(ProductRecord, Product), ApiError> {
    let products = app.shard.products();
    let record = products.get(project_id, product_id).ok_or(ApiError::ProductNotFound)?;
    Ok((record.clone(), parse(record)?))
}

fn parse(record: &ProductRecord) -> Result<Product, ApiError> {
    protocol::json::from_bytes(record.product_json.as_bytes()).map_err(|e| {
        ApiError::Unavailable(format!("stored product '{}' is unreadable: {e}", record.product_id))
    })
}
