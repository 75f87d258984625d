using System.Net;
using Confluent.SchemaRegistry;

namespace KafkaTx.Testing.SchemaRegistry;

/// <summary>
/// A schema registry in memory, for driving Confluent's real Avro and JSON Schema serdes without a registry server.
/// Subjects hold versions; a schema registered again under its subject keeps its id. Two switches make the failures
/// a registry has: an outage (every call fails as an unreachable registry does, with HttpRequestException) and a
/// compatibility refusal (a new version of a subject is refused with 409, as with an incompatible schema).
/// </summary>
/// <remarks>The serdes cache what they fetched or registered: an outage only shows on calls that miss those caches
/// (a new subject, a schema id not seen before).</remarks>
public sealed class FakeSchemaRegistryClient : ISchemaRegistryClient
{
    private readonly Lock _lock = new();
    private readonly List<RegisteredSchema> _schemas = [];
    private readonly HashSet<string> _frozenSubjects = [];
    private readonly Dictionary<string, Compatibility> _compatibility = []; // per subject; "" is the global level
    private int _calls;
    private int _failedCalls;
    private volatile bool _down;

    /// <summary>Calls made (answered or failed).</summary>
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Calls that failed because of the outage.</summary>
    public int FailedCalls => Volatile.Read(ref _failedCalls);

    /// <summary>Whether every call fails as an unreachable registry's does.</summary>
    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    /// <summary>Refuses any new version of the subject (409, incompatible schema); versions already registered stay usable.</summary>
    public void RefuseNewVersions(string subject)
    {
        lock (_lock)
        {
            _frozenSubjects.Add(subject);
        }
    }

    /// <summary>The subjects registered so far.</summary>
    public IReadOnlyList<string> Subjects()
    {
        lock (_lock)
        {
            return _schemas.Select(s => s.Subject).Distinct().ToList();
        }
    }

    /// <inheritdoc/>
    public IEnumerable<KeyValuePair<string, string>> Config => [];

    /// <inheritdoc/>
    public IAuthenticationHeaderValueProvider AuthHeaderProvider => null!;

    /// <inheritdoc/>
    public IWebProxy Proxy => null!;

    /// <inheritdoc/>
    public int MaxCachedSchemas => 1000;

    /// <inheritdoc/>
    public Task<int> RegisterSchemaAsync(string subject, string avroSchema, bool normalize = false) =>
        RegisterSchemaAsync(subject, new Schema(avroSchema, SchemaType.Avro), normalize);

    /// <inheritdoc/>
    public async Task<int> RegisterSchemaAsync(string subject, Schema schema, bool normalize = false) =>
        (await RegisterSchemaWithResponseAsync(subject, schema, normalize).ConfigureAwait(false)).Id;

    /// <inheritdoc/>
    public Task<RegisteredSchema> RegisterSchemaWithResponseAsync(string subject, Schema schema, bool normalize = false) => Answer(() =>
    {
        if (Find(subject, schema.SchemaString) is { } existing)
        {
            return existing;
        }

        if (_frozenSubjects.Contains(subject) && _schemas.Any(s => s.Subject == subject))
        {
            throw new SchemaRegistryException("Schema being registered is incompatible with an earlier schema for subject \"" + subject + "\"", HttpStatusCode.Conflict, 409);
        }

        var id = _schemas.Count == 0 ? 1 : _schemas.Max(s => s.Id) + 1;
        var sameString = _schemas.FirstOrDefault(s => s.SchemaString == schema.SchemaString);
        var version = _schemas.Count(s => s.Subject == subject) + 1;
        var registered = new RegisteredSchema(subject, version, sameString?.Id ?? id, schema.SchemaString, schema.SchemaType, schema.References ?? []);
        _schemas.Add(registered);
        return registered;
    });

    /// <inheritdoc/>
    public Task<int> GetSchemaIdAsync(string subject, string avroSchema, bool normalize = false) =>
        GetSchemaIdAsync(subject, new Schema(avroSchema, SchemaType.Avro), normalize);

    /// <inheritdoc/>
    public async Task<int> GetSchemaIdAsync(string subject, Schema schema, bool normalize = false) =>
        (await LookupSchemaAsync(subject, schema, false, normalize).ConfigureAwait(false)).Id;

    /// <inheritdoc/>
    public Task<Schema> GetSchemaAsync(int id, string? format = null) =>
        Answer<Schema>(() => ToSchema(_schemas.FirstOrDefault(s => s.Id == id) ?? throw NotFound($"Schema {id} not found", 40403)));

    /// <inheritdoc/>
    public Task<Schema> GetSchemaBySubjectAndIdAsync(string subject, int id, string? format = null) => GetSchemaAsync(id, format);

    /// <inheritdoc/>
    public Task<Schema> GetSchemaByGuidAsync(string guid, string? format = null) => throw new NotSupportedException("Schema GUIDs are not modelled.");

    /// <inheritdoc/>
    public Task<RegisteredSchema> LookupSchemaAsync(string subject, Schema schema, bool ignoreDeletedSchemas, bool normalize = false) =>
        Answer(() => Find(subject, schema.SchemaString) ?? throw NotFound($"Schema not found under subject \"{subject}\"", 40403));

    /// <inheritdoc/>
    public Task<RegisteredSchema> GetRegisteredSchemaAsync(string subject, int version, bool ignoreDeletedSchemas = true) =>
        Answer(() => _schemas.FirstOrDefault(s => s.Subject == subject && s.Version == version) ?? throw NotFound($"Version {version} of subject \"{subject}\" not found", 40402));

    /// <inheritdoc/>
    public async Task<string> GetSchemaAsync(string subject, int version) =>
        (await GetRegisteredSchemaAsync(subject, version).ConfigureAwait(false)).SchemaString;

    /// <inheritdoc/>
    public Task<RegisteredSchema> GetLatestSchemaAsync(string subject) =>
        Answer(() => _schemas.LastOrDefault(s => s.Subject == subject) ?? throw NotFound($"Subject \"{subject}\" not found", 40401));

    /// <inheritdoc/>
    public Task<RegisteredSchema> GetLatestWithMetadataAsync(string subject, IDictionary<string, string> metadata, bool ignoreDeletedSchemas) =>
        GetLatestSchemaAsync(subject);

    /// <inheritdoc/>
    public Task<List<string>> GetAllSubjectsAsync() => Answer(() => _schemas.Select(s => s.Subject).Distinct().ToList());

    /// <inheritdoc/>
    public Task<List<int>> GetSubjectVersionsAsync(string subject) => Answer(() => _schemas.Where(s => s.Subject == subject).Select(s => s.Version).ToList());

    /// <inheritdoc/>
    public Task<bool> IsCompatibleAsync(string subject, string avroSchema) => IsCompatibleAsync(subject, new Schema(avroSchema, SchemaType.Avro));

    /// <inheritdoc/>
    public Task<bool> IsCompatibleAsync(string subject, Schema schema) =>
        Answer(() => !_frozenSubjects.Contains(subject) || Find(subject, schema.SchemaString) is not null);

    /// <inheritdoc/>
    public string ConstructKeySubjectName(string topic, string? recordType = null) => $"{topic}-key";

    /// <inheritdoc/>
    public string ConstructValueSubjectName(string topic, string? recordType = null) => $"{topic}-value";

    /// <inheritdoc/>
    /// <remarks>The level last set for the subject, else the global one, else Backward (the registry's default). Stored only: the fake checks no compatibility.</remarks>
    public Task<Compatibility> GetCompatibilityAsync(string? subject = null) => Answer(() =>
        _compatibility.TryGetValue(subject ?? string.Empty, out var level) || _compatibility.TryGetValue(string.Empty, out level) ? level : Compatibility.Backward);

    /// <inheritdoc/>
    public Task<Compatibility> UpdateCompatibilityAsync(Compatibility compatibility, string? subject = null) => Answer(() => _compatibility[subject ?? string.Empty] = compatibility);

    /// <inheritdoc/>
    public void ClearLatestCaches()
    {
    }

    /// <inheritdoc/>
    public void ClearCaches()
    {
    }

    /// <summary>No associations: the serdes' default subject name strategy then falls back to topic-key / topic-value.</summary>
    public Task<List<Association>> GetAssociationsByResourceNameAsync(string resourceName, string resourceNamespace, string resourceType, List<string> associationTypes, string lifecycle, int offset, int limit) =>
        Answer(() => new List<Association>());

    /// <inheritdoc/>
    public Task<AssociationResponse> CreateAssociationAsync(AssociationCreateOrUpdateRequest request) => throw new NotSupportedException("Associations are not modelled.");

    /// <inheritdoc/>
    public Task DeleteAssociationsAsync(string resourceId, string resourceType, List<string> associationTypes, bool cascadeLifecycle) =>
        throw new NotSupportedException("Associations are not modelled.");

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    private static Schema ToSchema(RegisteredSchema registered) => new(registered.SchemaString, registered.References, registered.SchemaType);

    private static SchemaRegistryException NotFound(string message, int errorCode) => new(message, HttpStatusCode.NotFound, errorCode);

    private RegisteredSchema? Find(string subject, string schemaString) =>
        _schemas.FirstOrDefault(s => s.Subject == subject && s.SchemaString == schemaString);

    private async Task<T> Answer<T>(Func<T> answer)
    {
        Interlocked.Increment(ref _calls);
        await Task.Yield(); // a network call: never answered at once
        if (_down)
        {
            Interlocked.Increment(ref _failedCalls);
            throw new HttpRequestException("No connection could be made: the schema registry at http://fake-registry:8081 is unreachable.");
        }

        lock (_lock)
        {
            return answer();
        }
    }
}
