-- The account's authentication profile: end users sign in with their AD
-- password through the LDAP directory connector (off by default).
ALTER TABLE accounts ADD COLUMN ldap_sign_in BOOLEAN NOT NULL DEFAULT FALSE;
