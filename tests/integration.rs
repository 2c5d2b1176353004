//! tn-agent's integration tests, one test binary with a module per area: the agent against a
//! local AWS world (moto_server, fake IMDSv2, real etcd; see tn_world), its IMDS and AWS
//! clients against fakes, and the units and user data it ships with. Shared helpers are in
//! `support`. Every test builds its own world (its own 127.<n>.0.0/16), so they run in
//! parallel like any test in one binary.

mod support;

mod backup;
mod cli;
mod cloud_config;
mod discovery;
mod etcd;
mod iam;
mod imds;
mod kube;
mod kube_api;
mod kube_reboot;
mod metrics;
mod pki_init;
mod reboot;
mod status;
mod units;
