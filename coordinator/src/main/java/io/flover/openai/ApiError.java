package io.flover.openai;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** An error as the OpenAI API answers it: an HTTP status and {@code {"error": {message, type, param, code}}}. */
final class ApiError extends RuntimeException {
    final int status;
    final String type;
    final String param;
    final String code;

    ApiError(int status, String type, String param, String code, String message) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400: a request field that is wrong, named in {@code param}. */
    static ApiError invalid(String param, String message) {
        return new ApiError(400, "invalid_request_error", param, null, message);
    }

    /** 400: a field Flover does not implement, which it refuses rather than ignores. */
    static ApiError unsupported(String param) {
        return new ApiError(400, "invalid_request_error", param, "unsupported_parameter",
                param + " is not supported by this server");
    }

    static ApiError notFound(String param, String code, String message) {
        return new ApiError(404, "invalid_request_error", param, code, message);
    }

    static ApiError unauthorized(String message) {
        return new ApiError(401, "authentication_error", null, "invalid_api_key", message);
    }

    static ApiError tooLarge(long limit) {
        return new ApiError(413, "invalid_request_error", null, "request_too_large",
                "the request body is larger than " + limit + " bytes");
    }

    static ApiError queueFull(String message) {
        return new ApiError(429, "rate_limit_error", null, "queue_full", message);
    }

    static ApiError unavailable(String message) {
        return new ApiError(503, "service_unavailable_error", null, "unavailable", message);
    }

    static ApiError internal(String message) {
        return new ApiError(500, "server_error", null, "internal_error", message);
    }

    /** The {@code error} object, which a stream also sends once it has begun. */
    ObjectNode body() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", getMessage());
        error.put("type", type);
        error.put("param", param);
        error.put("code", code);
        return root;
    }

    /** The name the serving metrics count refusals under, the gRPC status a refusal there would have. */
    String statusName() {
        return switch (status) {
            case 400, 404, 413 -> "INVALID_ARGUMENT";
            case 401 -> "UNAUTHENTICATED";
            case 429 -> "RESOURCE_EXHAUSTED";
            case 503 -> "UNAVAILABLE";
            default -> "INTERNAL";
        };
    }
}
