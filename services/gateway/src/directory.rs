//! DirectoryService: what the store holds for an account.

use tonic::{Request, Response, Status};

use dirsync_core::{EmailAddress, ObjectKind};
use dirsync_proto::api::{self, directory_service_server::DirectoryService};

use crate::error::status_of;
use crate::{Gateway, convert};

impl Gateway {
    async fn list(
        &self,
        request: Request<api::ListObjectsRequest>,
        kind: ObjectKind,
    ) -> Result<Response<api::ListObjectsResponse>, Status> {
        let (account, _) = self.authorize(request).await?;
        let account = account.as_str();
        let objects = self
            .store
            .list_objects(account, kind)
            .await
            .map_err(status_of)?;
        Ok(Response::new(api::ListObjectsResponse {
            objects: objects.iter().map(convert::object).collect(),
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
