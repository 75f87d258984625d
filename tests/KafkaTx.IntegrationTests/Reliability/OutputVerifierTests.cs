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
