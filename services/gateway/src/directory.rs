//! DirectoryService: what the store holds for an account.

use tonic::{Request, Response, Status};

use dirsync_core::{EmailAddress, ObjectKind};
use dirsync_proto::api::{self, directory_service_server::DirectoryService};

use dirsync_store::ObjectQuery;

use crate::error::status_of;
use crate::{Gateway, convert};

/// Most ids one ListObjects request may name.
const MAX_IDS: usize = 1000;
/// Largest page.
const MAX_PAGE_SIZE: u32 = 1000;

/// A page token: the hex of the page's last display name, a dot, its id.
fn page_token(o: &dirsync_store::StoredObject) -> String {
    format!(
        "{}.{}",
        hex::encode(o.record.attributes.display_name.as_bytes()),
        o.record.anchor
    )
}

fn parse_page_token(token: &str) -> Result<(String, String), Status> {
    let bad = || {
        Status::invalid_argument(
            "page_token: is not a next_page_token this API returned; start again without one",
        )
    };
    let (name, anchor) = token.split_once('.').ok_or_else(bad)?;
    if anchor.is_empty() {
        return Err(bad());
    }
    let bytes = hex::decode(name).map_err(|_| bad())?;
    Ok((
        String::from_utf8(bytes).map_err(|_| bad())?,
        anchor.to_owned(),
    ))
}

impl Gateway {
    async fn list(
        &self,
        request: Request<api::ListObjectsRequest>,
        kind: ObjectKind,
    ) -> Result<Response<api::ListObjectsResponse>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        if req.ids.len() > MAX_IDS {
            return Err(Status::invalid_argument(format!(
                "ids: {} ids named; at most {MAX_IDS} per request",
                req.ids.len()
            )));
        }
        if req.page_size > MAX_PAGE_SIZE {
            return Err(Status::invalid_argument(format!(
                "page_size: {} is over the largest page, {MAX_PAGE_SIZE}",
                req.page_size
            )));
        }
        let after = match req.page_token.as_str() {
            "" => None,
            token => Some(parse_page_token(token)?),
        };
        let paged = req.page_size > 0;
        let query = ObjectQuery {
            kind,
            search: req.query,
            anchors: req.ids,
            after,
            // One more than the page: whether there is a next one.
            limit: paged.then_some(req.page_size + 1),
        };
        let mut objects = self
            .store
            .list_objects(account, &query)
            .await
            .map_err(status_of)?;
        let mut next_page_token = String::new();
        if paged && objects.len() > req.page_size as usize {
            objects.truncate(req.page_size as usize);
            next_page_token = objects.last().map(page_token).unwrap_or_default();
        }
        Ok(Response::new(api::ListObjectsResponse {
            objects: objects.iter().map(convert::object).collect(),
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl DirectoryService for Gateway {
    async fn list_users(
        &self,
        request: Request<api::ListObjectsRequest>,
    ) -> Result<Response<api::ListObjectsResponse>, Status> {
        self.list(request, ObjectKind::User).await
    }

    async fn list_groups(
        &self,
        request: Request<api::ListObjectsRequest>,
    ) -> Result<Response<api::ListObjectsResponse>, Status> {
        self.list(request, ObjectKind::Group).await
    }

    async fn list_contacts(
        &self,
        request: Request<api::ListObjectsRequest>,
    ) -> Result<Response<api::ListObjectsResponse>, Status> {
        self.list(request, ObjectKind::Contact).await
    }

    async fn lookup_address(
        &self,
        request: Request<api::LookupAddressRequest>,
    ) -> Result<Response<api::DirectoryObject>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let address = EmailAddress::parse(&req.address)
            .map_err(|e| Status::invalid_argument(format!("address: {e}")))?;
        let object = self
            .store
            .lookup_address(account, address.as_str())
            .await
            .map_err(status_of)?;
        Ok(Response::new(convert::object(&object)))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_page_token;

    #[test]
    fn page_tokens_round_trip_and_refuse_what_they_did_not_make() {
        let token = format!("{}.{}", hex::encode("Zoë. Ann".as_bytes()), "a-b");
        assert_eq!(
            parse_page_token(&token).expect("token"),
            ("Zoë. Ann".to_owned(), "a-b".to_owned())
        );
        for bad in ["", "abc", "6.x", "zz.x", "61.", "ff.x"] {
            assert!(parse_page_token(bad).is_err(), "{bad:?} accepted");
        }
    }
}
