//! ASG discovery against moto: the ASG's instances with lifecycle state, private IP and launch
//! time, in few calls, across pages, after a replacement.

use tn_agent::aws::{Aws, AwsError};
use tn_world::World;

#[test]
fn discovers_an_asg_of_three_in_three_calls() {
    let world = World::start().unwrap();
    let ids = world.create_asg("demo-etcd", "etcd", 3).unwrap();
    assert_eq!(ids.len(), 3);
    let aws = Aws::from_sdk_config(&world.sdk_config, true);

    let name = world.block_on(aws.asg_of(&ids[1])).unwrap();
    assert_eq!(name, "demo-etcd");
    let view = world.block_on(aws.describe_asg(&name)).unwrap();
    assert_eq!(
        aws.calls(),
        3,
        "DescribeAutoScalingInstances, -Groups, DescribeInstances"
    );

    assert_eq!(view.name, "demo-etcd");
    assert_eq!(view.desired_capacity, 3);
    let got: Vec<_> = view
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    assert_eq!(got, ids, "sorted by id");
    let expected = world.asg_instances("demo-etcd").unwrap();
    for (inst, want) in view.instances.iter().zip(&expected) {
        assert!(inst.in_service(), "{inst:?}");
        assert!(!inst.leaving(), "{inst:?}");
        assert_eq!(inst.private_ip, Some(want.ip));
        let subnet = world.vpc_cidr().replace(".0.0/16", ".1.");
        assert!(
            inst.private_ip.unwrap().to_string().starts_with(&subnet),
            "{inst:?} in {subnet}0/24"
        );
        assert_eq!(inst.health_status, "Healthy");
        assert_eq!(inst.availability_zone, "us-east-1a");
        assert_eq!(inst.ec2_state.as_deref(), Some("running"));
        let launched = inst.launch_time.as_deref().expect("launch time");
        assert!(launched.starts_with("20"), "RFC 3339: {launched}");
    }
}

#[test]
fn sees_a_terminated_instance_replaced() {
    let world = World::start().unwrap();
    let ids = world.create_asg("demo-etcd", "etcd", 3).unwrap();
    let aws = Aws::from_sdk_config(&world.sdk_config, true);
    let before = world.block_on(aws.describe_asg("demo-etcd")).unwrap();

    world.terminate(&ids[0]).unwrap();
    let after = world.block_on(aws.describe_asg("demo-etcd")).unwrap();
    let in_service: Vec<_> = after
        .instances
        .iter()
        .filter(|i| i.in_service() && !i.leaving())
        .collect();
    assert_eq!(in_service.len(), 3, "{after:#?}");
    assert!(
        in_service.iter().all(|i| i.instance_id != ids[0]),
        "the terminated instance is not in service: {after:#?}"
    );
    let newcomer = in_service
        .iter()
        .find(|i| !ids.contains(&i.instance_id))
        .expect("a replacement with a new id");
    let old_ips: Vec<_> = before.instances.iter().map(|i| i.private_ip).collect();
    assert!(newcomer.private_ip.is_some());
    assert!(
        !old_ips.contains(&newcomer.private_ip),
        "new IP: {newcomer:?}"
    );
}

#[test]
fn pages_through_a_large_asg() {
    let world = World::start().unwrap();
    world.create_asg("demo-worker", "worker", 1).unwrap();
    // Grown one instance at a time, as scale-outs do: seven launches, and (in EC2 as in moto)
    // seven reservations, more than one page of five.
    for desired in 2..=7 {
        world.set_desired_capacity("demo-worker", desired).unwrap();
    }
    let ids: Vec<_> = world
        .asg_instances("demo-worker")
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids.len(), 7);
    let aws = Aws::from_sdk_config(&world.sdk_config, true).with_page_size(5);
    let view = world.block_on(aws.describe_asg("demo-worker")).unwrap();
    let got: Vec<_> = view
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    assert_eq!(got, ids);
    assert!(
        view.instances.iter().all(|i| i.private_ip.is_some()),
        "every page was read: {view:#?}"
    );
    assert_eq!(aws.calls(), 1 + 2, "one ASG call and two pages");
}

#[test]
fn unknown_instance_and_group_are_clear_errors() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let aws = Aws::from_sdk_config(&world.sdk_config, true);
    let err = world
        .block_on(aws.asg_of("i-0000000000000dead"))
        .unwrap_err();
    assert!(matches!(err, AwsError::NotInAsg(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "instance i-0000000000000dead is not in any autoscaling group"
    );
    let err = world.block_on(aws.describe_asg("nope")).unwrap_err();
    assert_eq!(err.to_string(), "autoscaling group \"nope\" does not exist");
}
