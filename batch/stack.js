// Package-time choices of serverless.yml that plain Serverless variables cannot express.
// serverless.yml reads each export with ${file(./batch/stack.js):<name>}.
//
//   network:         --param vpcId=vpc-... --param subnetIds=subnet-a,subnet-b
//                    [--param securityGroupIds=sg-1,sg-2]: run Batch in an existing VPC.
//                    Without vpcId the stack creates its own (batch/network.yml), as before.
//   imageTag:        PSTFAST_IMAGE_TAG or --param imageTag=...; `--stage prod` needs one
//                    that is not `latest` (a prod stack must name the image it runs).
//   deploymentMethod: PSTFAST_DEPLOY_METHOD=changesets (default) | direct.
//
// A bad value is one error line naming the option (no stack trace).
'use strict';

const path = require('path');
const fs = require('fs');
// osls's own YAML loader: it understands the CloudFormation short forms (!Ref, !Sub, ...)
const parseYaml = require('osls/lib/utils/fs/parse');

const NETWORK_FILE = path.join(__dirname, 'network.yml');
const DEPLOY_METHODS = ['changesets', 'direct'];

function fail(message) {
  const error = new Error(message);
  error.stack = `pstfast stack: ${message}`; // osls prints .stack: keep it to the message
  throw error;
}

function cliParams(options) {
  const params = {};
  for (const item of [].concat(options.param || [])) {
    const at = String(item).indexOf('=');
    if (at > 0) params[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return params;
}

function idList(value, prefix, name) {
  const ids = String(value || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const id of ids) {
    if (!new RegExp(`^${prefix}-[0-9a-zA-Z]+$`).test(id)) {
      fail(`--param ${name}: "${id}" is not a ${prefix}-... id`);
    }
  }
  return ids;
}

function createdNetwork() {
  return parseYaml(NETWORK_FILE, fs.readFileSync(NETWORK_FILE, 'utf8')).Resources;
}

/** What the compute environment runs in, and which network resources the stack creates. */
function network(options) {
  const params = cliParams(options);
  const vpcId = params.vpcId;
  const subnetIds = idList(params.subnetIds, 'subnet', 'subnetIds');
  const securityGroupIds = idList(params.securityGroupIds, 'sg', 'securityGroupIds');
  if (!vpcId) {
    if (subnetIds.length || securityGroupIds.length) {
      fail('--param subnetIds/securityGroupIds need --param vpcId=vpc-... (the VPC they belong to)');
    }
    return {
      resources: { Resources: createdNetwork() },
      subnets: [{ Ref: 'SubnetA' }, { Ref: 'SubnetB' }],
      securityGroups: [{ Ref: 'BatchSecurityGroup' }],
    };
  }
  if (!/^vpc-[0-9a-zA-Z]+$/.test(vpcId)) fail(`--param vpcId: "${vpcId}" is not a vpc-... id`);
  if (subnetIds.length === 0) {
    fail('--param vpcId needs --param subnetIds=subnet-a,subnet-b (subnets of that VPC, comma-separated)');
  }
  if (securityGroupIds.length) {
    return { resources: { Resources: {} }, subnets: subnetIds, securityGroups: securityGroupIds };
  }
  // an existing VPC without named security groups: only the egress-only group, in that VPC
  const group = createdNetwork().BatchSecurityGroup;
  group.Properties.VpcId = vpcId;
  return {
    resources: { Resources: { BatchSecurityGroup: group } },
    subnets: subnetIds,
    securityGroups: [{ Ref: 'BatchSecurityGroup' }],
  };
}

async function stageOf({ options, resolveConfigurationProperty }) {
  if (options.stage) return options.stage;
  return (await resolveConfigurationProperty(['provider', 'stage'])) || 'dev';
}

module.exports = {
  networkResources: (ctx) => network(ctx.options).resources,
  subnets: (ctx) => network(ctx.options).subnets,
  securityGroups: (ctx) => network(ctx.options).securityGroups,

  imageTag: async (ctx) => {
    const fromParam = cliParams(ctx.options).imageTag;
    const tag = (fromParam || process.env.PSTFAST_IMAGE_TAG || '').trim();
    const stage = await stageOf(ctx);
    if (stage === 'prod' && (!tag || tag === 'latest')) {
      fail(
        '--stage prod needs the image tag the Batch jobs run: set PSTFAST_IMAGE_TAG=<tag> ' +
          '(or --param imageTag=<tag>); `latest` is not allowed for prod'
      );
    }
    if (tag && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) fail(`image tag "${tag}" is not a valid tag`);
    return tag || 'latest';
  },

  deploymentMethod: () => {
    const method = (process.env.PSTFAST_DEPLOY_METHOD || 'changesets').trim();
    if (!DEPLOY_METHODS.includes(method)) {
      fail(`PSTFAST_DEPLOY_METHOD="${method}": expected one of ${DEPLOY_METHODS.join(', ')}`);
    }
    return method;
  },
};
