using KafkaTx.Reliability.Verification;

namespace KafkaTx.IntegrationTests.Reliability;

/// <summary>The crash harness's verdict is only as good as its verifier: each defect it must see, it sees.</summary>
public sealed class OutputVerifierTests
{
    private static readonly Dictionary<int, long> TwoPartitionsOfThree = new() { [0] = 3, [1] = 3 };

    [Fact]
    public void A_complete_ordered_copy_has_no_defect()
    {
        var verifier = Observe("0:0", "1:0", "0:1", "1:1", "0:2", "1:2");

        verifier.Duplicates.Should().Be(0);
        verifier.OutOfOrder.Should().Be(0);
        verifier.Losses(TwoPartitionsOfThree).Should().Be(0);
    }

    [Fact]
    public void A_record_seen_twice_is_a_duplicate()
    {
        var verifier = Observe("0:0", "0:1", "0:1", "0:2", "1:0", "1:1", "1:2", "1:0");

        verifier.Duplicates.Should().Be(2);
        verifier.Losses(TwoPartitionsOfThree).Should().Be(0);
    }

    [Fact]
    public void Missing_records_and_a_missing_partition_are_losses()
    {
        var verifier = Observe("0:0", "0:2");

        verifier.Losses(TwoPartitionsOfThree).Should().Be(1 + 3);
    }

    [Fact]
    public void A_record_after_a_later_one_of_its_partition_is_out_of_order_not_lost()
    {
        var verifier = Observe("0:0", "0:2", "0:1", "1:0", "1:1", "1:2");

        verifier.OutOfOrder.Should().Be(1);
        verifier.PartitionsOutOfOrder.Should().Be(1);
        verifier.Duplicates.Should().Be(0);
        verifier.Losses(TwoPartitionsOfThree).Should().Be(0);
    }

    [Fact]
    public void A_value_that_is_not_partition_colon_sequence_is_malformed()
    {
        var verifier = Observe("0:0", "garbage", null, "0:x");

        verifier.Malformed.Should().Be(3);
    }

    /// <summary>
    /// The split handler writes input p:s as p:2s then p:2s+1, and the expected counts double: the first half of a
    /// record committed without the second is a loss; a first half committed and then written again by a retry is a
    /// duplicate.
    /// </summary>
    [Fact]
    public void A_split_handler_s_half_committed_work_is_a_loss_and_its_redone_half_a_duplicate()
    {
        var inputRecords = new Dictionary<int, long> { [0] = 3 };
        var outputRecords = inputRecords.ToDictionary(p => p.Key, p => p.Value * 2);

        var halfCommitted = Observe("0:0", "0:1", "0:2", "0:4", "0:5");
        var redone = Observe("0:0", "0:1", "0:2", "0:2", "0:3", "0:4", "0:5");

        halfCommitted.Losses(outputRecords).Should().Be(1, "input record 1's second half (0:3) is missing");
        halfCommitted.HalfDone(outputRecords).Should().Be(1);
        Observe("0:0", "0:1", "0:2").HalfDone(outputRecords).Should().Be(1, "the last record read, 0:2, is a first half");
        Observe("0:0", "0:1").HalfDone(outputRecords).Should().Be(0, "a whole record missing (0:2 and 0:3) is a loss, not half-done work");
        halfCommitted.Duplicates.Should().Be(0);
        redone.Duplicates.Should().Be(1, "input record 1's first half (0:2) was committed twice");
        redone.Losses(outputRecords).Should().Be(0);
        redone.HalfDone(outputRecords).Should().Be(0);
    }

    /// <summary>
    /// Key order (issue 17): with 2 keys per partition, input 0:s has key p0-k(s % 2). Records of different keys may
    /// overtake each other; records of one key may not.
    /// </summary>
    [Fact]
    public void In_key_order_records_of_different_keys_may_overtake_each_other_but_not_records_of_one_key()
    {
        var inputRecords = new Dictionary<int, long> { [0] = 4 };

        var overtaken = ObserveWith(new OutputVerifier(keys: 2, outputsPerRecord: 1, checksOrder: true), "0:1", "0:3", "0:0", "0:2");
        var reordered = ObserveWith(new OutputVerifier(keys: 2, outputsPerRecord: 1, checksOrder: true), "0:0", "0:3", "0:1", "0:2");

        overtaken.KeysOutOfOrder.Should().Be(0, "key 1 (0:1, 0:3) and key 0 (0:0, 0:2) are each in order");
        overtaken.PartitionsOutOfOrder.Should().Be(0, "partition order is not what key order checks");
        overtaken.Losses(inputRecords).Should().Be(0);
        overtaken.Duplicates.Should().Be(0);
        reordered.KeysOutOfOrder.Should().Be(1, "0:1 came after 0:3, a later record of its key");
        reordered.StreamsOutOfOrder.Should().Be(1);
        reordered.Losses(inputRecords).Should().Be(0);
    }

    [Fact]
    public void In_key_order_a_record_missing_or_seen_twice_is_a_loss_or_a_duplicate_of_its_key()
    {
        var inputRecords = new Dictionary<int, long> { [0] = 5, [1] = 2 };

        var verifier = ObserveWith(new OutputVerifier(keys: 3, outputsPerRecord: 1, checksOrder: true), "0:0", "0:1", "0:2", "0:4", "0:4", "1:1");

        verifier.Duplicates.Should().Be(1, "0:4 twice");
        verifier.Losses(inputRecords).Should().Be(2, "0:3 (key 0, after 0:0) and 1:0 never came");
        verifier.KeysOutOfOrder.Should().Be(0);
    }

    [Fact]
    public void In_key_order_a_split_handler_s_halves_are_checked_per_key()
    {
        // Input 0:0..0:3 with 2 keys, split: input s is written as 0:2s then 0:2s+1.
        var outputRecords = new Dictionary<int, long> { [0] = 8 };

        var complete = ObserveWith(new OutputVerifier(keys: 2, outputsPerRecord: 2, checksOrder: true), "0:2", "0:3", "0:0", "0:1", "0:6", "0:7", "0:4", "0:5");
        var halfDone = ObserveWith(new OutputVerifier(keys: 2, outputsPerRecord: 2, checksOrder: true), "0:2", "0:3", "0:0", "0:1", "0:6", "0:4", "0:5");

        complete.Losses(outputRecords).Should().Be(0);
        complete.KeysOutOfOrder.Should().Be(0);
        complete.HalfDone(outputRecords).Should().Be(0);
        halfDone.Losses(outputRecords).Should().Be(1, "input 3's second half, 0:7");
        halfDone.HalfDone(outputRecords).Should().Be(1);
    }

    [Fact]
    public void Unordered_a_record_after_a_later_one_is_no_defect_but_duplicates_and_losses_still_are()
    {
        var verifier = ObserveWith(new OutputVerifier(keys: 1, outputsPerRecord: 1, checksOrder: false), "0:2", "0:0", "0:0", "1:1", "1:0");

        verifier.OutOfOrder.Should().Be(2, "0:0 and 1:0 came after later records; counted");
        verifier.StreamsOutOfOrder.Should().Be(0, "but unordered, that is no defect");
        verifier.PartitionsOutOfOrder.Should().Be(0);
        verifier.Duplicates.Should().Be(1);
        verifier.Losses(TwoPartitionsOfThree).Should().Be(2, "0:1 and 1:2");
    }

    private static OutputVerifier Observe(params string?[] values) => ObserveWith(new OutputVerifier(), values);

    private static OutputVerifier ObserveWith(OutputVerifier verifier, params string?[] values)
    {
        foreach (var value in values)
        {
            verifier.Observe(value);
        }

        return verifier;
    }
}
