#!/usr/bin/perl
# Drives Debian's Net::Akismet (libnet-akismet-perl), unmodified, against the service.
# Net::Akismet puts the key in the host name (http://KEY.SERVICE_HOST/1.1/comment-check); the
# test serves on localhost, so names under .localhost resolve to 127.0.0.1 here, as a resolver
# that follows RFC 6761 would, without touching /etc/hosts.
# Usage: net-akismet.pl HOST:PORT KEY BLOG; prints one JSON object of the client's answers.
use strict;
use warnings;
use IO::Socket::IP;
use Socket ();
use JSON::PP;

{
    no warnings 'redefine';
    *IO::Socket::IP::getaddrinfo = sub {
        my ($host, @rest) = @_;
        $host = '127.0.0.1' if defined $host && $host =~ /\.localhost\z/i;
        return Socket::getaddrinfo($host, @rest);
    };
}

use Net::Akismet;

my ($service, $key, $blog) = @ARGV;
my %answers;
my $akismet = Net::Akismet->new(KEY => $key, URL => $blog, SERVICE_HOST => $service);
$answers{verified} = $akismet ? JSON::PP::true : JSON::PP::false;
if ($akismet) {
    my %visitor = (USER_IP => '203.0.113.7', COMMENT_USER_AGENT => 'Mozilla/5.0 (X11)');
    $answers{spam} = $akismet->check(
        %visitor,
        COMMENT_AUTHOR  => 'Pills',
        COMMENT_CONTENT => 'Buy cheap viagra now!!! http://pills.example/buy and '
            . 'http://cheap-meds.example click here to order',
    );
    $answers{ham} = $akismet->check(
        %visitor,
        COMMENT_AUTHOR  => 'Ann',
        COMMENT_CONTENT => 'Thanks for the thoughtful article; the section on budgets was very clear.',
        PERMALINK       => "$blog/budgets",
    );
    $answers{submitted_spam} = $akismet->spam(%visitor, COMMENT_CONTENT => 'cheap pills here')
        ? JSON::PP::true : JSON::PP::false;
    $answers{submitted_ham} = $akismet->ham(%visitor, COMMENT_CONTENT => 'a fair point, thanks')
        ? JSON::PP::true : JSON::PP::false;
}
print JSON::PP->new->canonical->encode(\%answers), "\n";
