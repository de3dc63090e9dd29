/*
 * Casefold: push ExtraHop detections to Casefold as alerts.
 *
 * What it does
 *   On DETECTION_CREATE and DETECTION_UPDATE, builds the payload described in README.md (next
 *   to this file) from the Detection object and POSTs it to Casefold's ExtraHop intake,
 *   /api/v1/alerts/extrahop, through an HTTP Open Data Stream target. Casefold answers 202 and
 *   folds the detection into a case; repeats of the same detection version are deduplicated.
 *
 * Install (on the console, or on Reveal(x) 360: detection triggers run where detections live)
 *   1. In Casefold, create an API token with the "ingest" role only (it can post alerts and
 *      nothing else: anyone allowed to read triggers can read it here).
 *   2. Administration > System Configuration > Open Data Streams: add an HTTP target named
 *      exactly "casefold" pointing at Casefold (host, port, HTTPS, and the CA if Casefold's
 *      certificate is private). Leave authentication empty: the trigger sends the token.
 *   3. Settings > Triggers > Create: paste this script, set CASEFOLD_TOKEN below, and select
 *      the events DETECTION_CREATE and DETECTION_UPDATE (if your version only offers
 *      DETECTION_UPDATE, select it alone: it also runs when a detection is created).
 *      Detection triggers need no device assignment.
 *   4. Turn on debug for a first run and check the trigger's debug log for "casefold:" lines.
 *   5. For Casefold to write the ticket id, status and assignee back, enable
 *      Administration > Detection Tracking > "track detections from an external ticketing
 *      system" and give Casefold an API key (appliance) or REST API credentials (360).
 */

// --- set by the admin --------------------------------------------------------------------
const CASEFOLD_ODS_TARGET = "casefold";
const CASEFOLD_TOKEN = "PASTE-CASEFOLD-INGEST-TOKEN-HERE";
const CASEFOLD_PATH = "/api/v1/alerts/extrahop";
// ------------------------------------------------------------------------------------------

const CONTRACT_VERSION = 1;
// Casefold refuses very large bodies; markdown descriptions and type-specific properties are
// the only fields that can grow, so they are bounded here.
const MAX_DESCRIPTION = 8000;
const MAX_PROPERTIES_JSON = 16000;

function valueOr(value, fallback) {
    return value === undefined || value === null ? fallback : value;
}

function text(value) {
    return value === undefined || value === null ? null : String(value);
}

function firstString(values) {
    if (!values) {
        return null;
    }
    for (var i = 0; i < values.length; i++) {
        if (values[i] !== undefined && values[i] !== null && String(values[i]) !== "") {
            return String(values[i]);
        }
    }
    return null;
}

function isIpAddress(object) {
    if (typeof IPAddress !== "undefined" && object instanceof IPAddress) {
        return true;
    }
    // Duck typing as a fallback: an IPAddress has no device identity and prints as an address.
    return object !== null && typeof object === "object" && object.discoverId === undefined &&
        object.ipaddrs === undefined && /^[0-9a-fA-F:.]+$/.test(String(object));
}

function isDevice(object) {
    if (typeof Device !== "undefined" && object instanceof Device) {
        return true;
    }
    return object !== null && typeof object === "object" &&
        (object.discoverId !== undefined || object.ipaddrs !== undefined);
}

// One participant in the REST API's shape (object_type, object_value / object_id, role),
// plus the device's first address and name, which the REST API does not inline.
function participantOf(participant) {
    var out = { role: text(participant.role) };
    var object = participant.object;
    try {
        if (object !== undefined && object !== null && isDevice(object)) {
            out.object_type = "device";
            out.object_id = valueOr(object.id, null);
            out.ipaddr = object.ipaddrs && object.ipaddrs.length ? String(object.ipaddrs[0]) : null;
            out.hostname = firstString(object.dnsNames) || text(object.dhcpName) ||
                text(object.netbiosName) || text(object.cdpName);
        } else if (object !== undefined && object !== null && isIpAddress(object)) {
            out.object_type = "ipaddr";
            out.object_value = String(object);
        } else {
            // Already plain data (or a class this script does not know): pass the ids along.
            out.object_type = text(valueOr(participant.object_type, participant.objectType));
            out.object_value = text(valueOr(participant.object_value, participant.objectValue));
            out.object_id = valueOr(valueOr(participant.object_id, participant.objectId), null);
            out.hostname = text(participant.hostname);
        }
        out.username = text(participant.username);
    } catch (err) {
        // A property this firmware lacks must not cost the whole detection.
        debug("casefold: participant skipped: " + err);
    }
    return out;
}

function propertiesOf(detection) {
    try {
        var json = JSON.stringify(valueOr(detection.properties, {}));
        return json.length <= MAX_PROPERTIES_JSON ? JSON.parse(json) : { truncated: true };
    } catch (err) {
        return null;
    }
}

function buildPayload(detection) {
    var participants = [];
    var source = valueOr(detection.participants, []);
    for (var i = 0; i < source.length; i++) {
        participants.push(participantOf(source[i]));
    }
    var description = text(detection.description);
    if (description !== null && description.length > MAX_DESCRIPTION) {
        description = description.substring(0, MAX_DESCRIPTION) + "…";
    }
    return {
        contract: CONTRACT_VERSION,
        event: event,
        sent_at: Date.now(),
        detection: {
            id: detection.id,
            title: text(detection.title),
            description: description,
            type: text(detection.type),
            risk_score: valueOr(detection.riskScore, null),
            categories: valueOr(detection.categories, []),
            status: text(detection.status),
            assignee: text(detection.assignee),
            ticket_id: text(detection.ticketId),
            resolution: text(detection.resolution),
            start_time: valueOr(detection.startTime, null),
            end_time: valueOr(detection.endTime, null),
            update_time: valueOr(detection.updateTime, null),
            is_custom: valueOr(detection.isCustom, null),
            mitre_categories: valueOr(detection.mitreCategories, []),
            participants: participants,
            properties: propertiesOf(detection)
        }
    };
}

if (event === "DETECTION_CREATE" || event === "DETECTION_UPDATE") {
    var queued = Remote.HTTP(CASEFOLD_ODS_TARGET).post({
        path: CASEFOLD_PATH,
        headers: {
            "Authorization": "Bearer " + CASEFOLD_TOKEN,
            "Content-Type": "application/json"
        },
        payload: JSON.stringify(buildPayload(Detection))
    });
    if (!queued) {
        // The ODS queue is full or the target is missing: Casefold's poller catches up later.
        debug("casefold: detection " + Detection.id + " not queued (check the ODS target)");
    }
}
