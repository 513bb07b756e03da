//! `dirsync users`, `groups`, `contacts` and `lookup`: the synced
//! directory.

use dirsync_proto::api;

use super::print::print_objects;
use super::{Client, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum ListCmd {
    /// List them.
    List,
}

/// Which objects a listing shows.
#[derive(Debug, Clone, Copy)]
pub enum Listing {
    Users,
    Groups,
    Contacts,
}

pub async fn list(client: &mut Client, what: Listing) -> anyhow::Result<Exit> {
    let account = client.account.clone();
    let req = || api::ListObjectsRequest {
        account_id: account.clone(),
        ..Default::default()
    };
    match what {
        Listing::Users => {
            let objects = client
                .directory
                .list_users(req())
                .await?
                .into_inner()
                .objects;
            print_objects("Users", &objects, &objects);
        }
        Listing::Contacts => {
            let objects = client
                .directory
                .list_contacts(req())
                .await?
                .into_inner()
                .objects;
            print_objects("Contacts", &objects, &objects);
        }
        Listing::Groups => {
            // Members are named by what they are: every object is read.
            let groups = client
                .directory
                .list_groups(req())
                .await?
                .into_inner()
                .objects;
            let mut all = client
                .directory
                .list_users(req())
                .await?
                .into_inner()
                .objects;
            all.extend(
                client
                    .directory
                    .list_contacts(req())
                    .await?
                    .into_inner()
                    .objects,
            );
            all.extend(groups.iter().cloned());
            print_objects("Groups", &groups, &all);
        }
    }
    Ok(Exit::SUCCESS)
}

/// `dirsync lookup`: the object that owns an address.
pub async fn lookup(client: &mut Client, address: String) -> anyhow::Result<Exit> {
    let o = client
        .directory
        .lookup_address(api::LookupAddressRequest {
            account_id: client.account.clone(),
            address,
        })
        .await?
        .into_inner();
    print_objects("Found", std::slice::from_ref(&o), &[]);
    Ok(Exit::SUCCESS)
}
