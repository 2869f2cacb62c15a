<?php
/**
 * Plugin Name: Moderation for Akismet
 * Description: Sends the Akismet plugin's API calls to a self-hosted moderation service instead of Akismet's servers. Set MODERATION_AKISMET_URL in wp-config.php.
 * Version:     1.0.0
 * Requires at least: 5.0
 * Requires PHP: 7.2
 * License:     MIT
 * License URI: https://opensource.org/licenses/MIT
 *
 * A must-use plugin: copy this one file to wp-content/mu-plugins/ and add to wp-config.php
 *
 *     define( 'MODERATION_AKISMET_URL', 'https://moderation.example.org' );
 *
 * then enter the site's Akismet-shaped key (`moderation sites create NAME --json` prints it as
 * "akismet_key") in Settings > Akismet Anti-spam > "Manually enter an API key".
 *
 * How it works: the Akismet plugin hard-codes its host (rest.akismet.com) and sends every
 * call through WordPress's HTTP API. WordPress core's documented `pre_http_request` filter
 * lets a plugin answer a request itself; this one answers each request to Akismet's REST API
 * by making the same request (method, body, headers, timeout) to the moderation service's
 * Akismet-compatible endpoints and returning that response, in WordPress's own response
 * format. Every other request is left alone. Without the constant it does nothing and tells
 * administrators so.
 *
 * License: MIT, like the project it belongs to (see its pyproject.toml). The MIT license is
 * compatible with the GPL (GPL-2.0-or-later) that WordPress and its plugins use, so this file
 * may be distributed with, and run inside, a WordPress site.
 *
 * @package ModerationAkismet
 */

defined( 'ABSPATH' ) || exit;

/** The host the Akismet plugin talks to; keys of the old API are a subdomain of it. */
const MODERATION_AKISMET_HOST = 'rest.akismet.com';

/**
 * The moderation service's base URL from wp-config.php, without a trailing slash.
 *
 * @return string The URL, or '' when the constant is unset or is not an http(s) URL.
 */
function moderation_akismet_service_url() {
	if ( ! defined( 'MODERATION_AKISMET_URL' ) || ! is_string( MODERATION_AKISMET_URL ) ) {
		return '';
	}
	$url    = rtrim( trim( MODERATION_AKISMET_URL ), '/' );
	$scheme = wp_parse_url( $url, PHP_URL_SCHEME );
	$host   = wp_parse_url( $url, PHP_URL_HOST );
	if ( ! in_array( $scheme, array( 'http', 'https' ), true ) || empty( $host ) ) {
		return '';
	}
	return $url;
}

/**
 * The request's headers as an array, whichever form the caller gave them in.
 *
 * @param array|string $headers Headers as an array, or as raw header lines.
 * @return array Header name => value.
 */
function moderation_akismet_headers( $headers ) {
	if ( is_array( $headers ) ) {
		return $headers;
	}
	if ( is_string( $headers ) && '' !== $headers ) {
		$processed = WP_Http::processHeaders( $headers );
		return $processed['headers'];
	}
	return array();
}

/**
 * A header's value, its name matched case-insensitively.
 *
 * @param array  $headers Header name => value.
 * @param string $name    The header's name.
 * @return string The value, or '' when absent.
 */
function moderation_akismet_header( array $headers, $name ) {
	foreach ( $headers as $key => $value ) {
		if ( 0 === strcasecmp( (string) $key, $name ) ) {
			return is_array( $value ) ? (string) reset( $value ) : (string) $value;
		}
	}
	return '';
}

/**
 * Whether a request is one for Akismet's REST API: http or https to rest.akismet.com or a
 * subdomain of it (the old API's KEY.rest.akismet.com), or to one of its addresses with
 * `Host: rest.akismet.com` (the plugin's per-server connectivity check), with a /1.x/ path.
 *
 * @param string $url     The request URL.
 * @param array  $headers The request's headers.
 * @return bool
 */
function moderation_akismet_is_akismet_request( $url, array $headers ) {
	$parts = wp_parse_url( $url );
	if ( ! is_array( $parts ) || empty( $parts['host'] ) ) {
		return false;
	}
	$scheme = isset( $parts['scheme'] ) ? strtolower( $parts['scheme'] ) : '';
	$path   = isset( $parts['path'] ) ? $parts['path'] : '';
	if ( ! in_array( $scheme, array( 'http', 'https' ), true ) || ! preg_match( '#^/1\.\d+/#', $path ) ) {
		return false;
	}
	$host = strtolower( $parts['host'] );
	if ( MODERATION_AKISMET_HOST === $host || moderation_akismet_key_label( $host ) !== '' ) {
		return true;
	}
	$by_address = false !== filter_var( $host, FILTER_VALIDATE_IP );
	return $by_address && 0 === strcasecmp( moderation_akismet_header( $headers, 'Host' ), MODERATION_AKISMET_HOST );
}

/**
 * The key in a KEY.rest.akismet.com host name (the old API's way of sending it).
 *
 * @param string $host A lowercase host name.
 * @return string The key, or '' when the host is not a subdomain of Akismet's.
 */
function moderation_akismet_key_label( $host ) {
	$suffix = '.' . MODERATION_AKISMET_HOST;
	if ( strlen( $host ) <= strlen( $suffix ) || substr( $host, -strlen( $suffix ) ) !== $suffix ) {
		return '';
	}
	$label = substr( $host, 0, -strlen( $suffix ) );
	return false === strpos( $label, '.' ) ? $label : '';
}

/**
 * The request body with the key added when the key travelled only in the host name, as the
 * service's host is not Akismet's. The Akismet plugin itself always sends the key in the body.
 *
 * @param string|array|null $body The request body.
 * @param string            $key  The key from the host name ('' when none).
 * @return string|array|null
 */
function moderation_akismet_body_with_key( $body, $key ) {
	if ( '' === $key ) {
		return $body;
	}
	if ( is_array( $body ) ) {
		if ( ! isset( $body['key'] ) && ! isset( $body['api_key'] ) ) {
			$body['api_key'] = $key;
		}
		return $body;
	}
	$body = (string) $body;
	parse_str( $body, $fields );
	if ( isset( $fields['key'] ) || isset( $fields['api_key'] ) ) {
		return $body;
	}
	return ( '' === $body ? '' : $body . '&' ) . 'api_key=' . rawurlencode( $key );
}

/**
 * The `pre_http_request` filter: answers a request for Akismet's REST API with the same
 * request made to the moderation service; every other request goes on unchanged.
 *
 * @param false|array|WP_Error $preempt A response another filter already chose, or false.
 * @param array                $args    The request's arguments (method, body, headers, timeout...).
 * @param string               $url     The request URL.
 * @return false|array|WP_Error False to let WordPress make the request, or the response.
 */
function moderation_akismet_redirect( $preempt, $args, $url ) {
	if ( false !== $preempt ) {
		return $preempt; // Another plugin has answered this request already.
	}
	$service = moderation_akismet_service_url();
	$headers = moderation_akismet_headers( isset( $args['headers'] ) ? $args['headers'] : array() );
	if ( '' === $service || ! moderation_akismet_is_akismet_request( $url, $headers ) ) {
		return false;
	}

	$parts  = wp_parse_url( $url );
	$target = $service . $parts['path'] . ( isset( $parts['query'] ) ? '?' . $parts['query'] : '' );

	// The Host header names Akismet's server; WordPress sets the service's own from the URL.
	foreach ( array_keys( $headers ) as $name ) {
		if ( 0 === strcasecmp( (string) $name, 'Host' ) ) {
			unset( $headers[ $name ] );
		}
	}
	$args['headers'] = $headers;
	$key             = moderation_akismet_key_label( strtolower( $parts['host'] ) );
	if ( isset( $args['body'] ) || '' !== $key ) {
		$args['body'] = moderation_akismet_body_with_key( isset( $args['body'] ) ? $args['body'] : '', $key );
	}

	// Method, body, the other headers, timeout, HTTP version and TLS options are the caller's.
	// The target is not Akismet's host, so this filter lets the inner request through.
	return wp_remote_request( $target, $args );
}
add_filter( 'pre_http_request', 'moderation_akismet_redirect', 10, 3 );

/**
 * Tells administrators when the plugin is installed but has no (usable) service URL, since
 * the Akismet plugin then still talks to Akismet.
 */
function moderation_akismet_admin_notice() {
	if ( ! current_user_can( 'manage_options' ) || '' !== moderation_akismet_service_url() ) {
		return;
	}
	$problem = defined( 'MODERATION_AKISMET_URL' )
		? __( 'MODERATION_AKISMET_URL in wp-config.php is not an http:// or https:// URL.' )
		: __( 'MODERATION_AKISMET_URL is not defined in wp-config.php.' );
	printf(
		'<div class="notice notice-warning"><p><strong>%1$s</strong> %2$s %3$s</p></div>',
		esc_html__( 'Moderation for Akismet:' ),
		esc_html( $problem ),
		esc_html__( 'The Akismet plugin still sends comments to Akismet, not to your moderation service.' )
	);
}
add_action( 'admin_notices', 'moderation_akismet_admin_notice' );
add_action( 'network_admin_notices', 'moderation_akismet_admin_notice' );
