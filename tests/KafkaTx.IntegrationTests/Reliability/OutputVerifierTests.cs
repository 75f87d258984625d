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

    private static OutputVerifier Observe(params string?[] values)
    {
        var verifier = new OutputVerifier();
        foreach (var value in values)
        {
            verifier.Observe(value);
        }

        return verifier;
    }
}
