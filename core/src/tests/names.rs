//! Well-known names: exclusive, passed to the next claimer in line; queued
//! claims that time out or are cancelled. Scripts in the language of the parent module's doc; connection `cN` has
//! process address `pN`.

use super::check;

#[test]
fn a_well_known_name_is_exclusive_and_passes_to_the_next_in_line() {
    check(
        "
        c2#1 claim worker               => c2#1 claimed
        c2#2 claim worker               => c2#2 claimed
        c3#1 claim worker               => c3#1 NameTaken
        c3#2 claim worker forever       =>
        c1#1 sendw n:worker job         => c1#1 sent 1 to 1
        c1#2 names                      => c1#2 names worker=c2+1
        disconnect c2                   => c3#2 claimed
        c1#3 sendw n:worker job2        => c1#3 sent 1 to 1
        c3#3 recvw inbox never          => c3#3 got 1 job2 from c1
        c3#4 release worker             => c3#4 released
        c1#4 sendw n:worker x           => c1#4 NoSuchProcess
        c1#5 release worker             => c1#5 NotHeld
        c1#6 names                      => c1#6 names
        ",
    );
}

#[test]
fn a_queued_claim_can_time_out_or_be_cancelled() {
    check(
        "
        c2#1 claim svc                  => c2#1 claimed
        c3#1 claim svc t=50             =>
        c4#1 claim svc                  => c4#1 NameTaken
        c4#2 claim svc forever          =>
        c4#3 cancel 2                   => c4#2 Cancelled; c4#3 cancelled true
        advance 50 =>
        expire                          => c3#1 Timeout
        c2#2 release svc                => c2#2 released
        c1#1 names                      => c1#1 names
        ",
    );
}
