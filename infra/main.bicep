// The QCOS gateway on Azure: one resource group holding a Python 3.11 function app on the Flex
// Consumption plan, its storage account, Key Vault, Log Analytics and Application Insights, a
// user-assigned identity that reaches all of them without keys, and the Web PubSub service and
// hub that hold the live stream's WebSockets. `azd up` deploys it; docs/deploy.md is the
// walkthrough.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('The azd environment name (AZURE_ENV_NAME): names the resource group and seeds every other name.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer the Flex Consumption plan.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of whoever runs azd (AZURE_PRINCIPAL_ID): may read and set the vault\'s secrets.')
param principalId string = ''

@description('Object id of the CI pipeline\'s service principal, when it is not the one running azd (AZURE_PIPELINE_PRINCIPAL_ID).')
param pipelinePrincipalId string = ''

@secure()
@description('The admin API key. azd reads it back from the vault (or makes one on the first run): see main.parameters.json.')
param adminApiKey string

@description('Memory of each instance in MB (2048 or 4096).')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
param maximumInstanceCount int = 100

@description('The live stream\'s Web PubSub tier: Free_F1 costs nothing and takes 20 connections and 20,000 messages a day, without an SLA; Standard_S1 and Premium_P1 are billed per unit per day.')
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
])
param webPubSubSku string = 'Free_F1'

@description('Web PubSub units, 1,000 connections each (Standard_S1 and Premium_P1; Free_F1 has one).')
@allowed([
  1
  2
  5
  10
  20
  50
  100
])
param webPubSubUnits int = 1

@description('The live stream\'s Web PubSub hub (QCOS_WEBPUBSUB_HUB): a letter, then letters, digits or underscores.')
@minLength(1)
@maxLength(128)
param webPubSubHubName string = 'qcos'

// Committed configuration: non-secret app settings, and the secret settings whose Key Vault
// secret exists (so only those are wired as references). See docs/deploy.md.
var config = loadJsonContent('settings.json')

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
// Flex Consumption reads the deployment package from this container.
var deploymentContainer = 'app-package'
var deployers = filter(union([principalId], [pipelinePrincipalId]), id => !empty(id))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-qcos-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stqcos${resourceToken}'
    location: location
    tags: tags
    deploymentContainer: deploymentContainer
  }
}

module monitor 'core/monitor.bicep' = {
  name: 'monitor'
  scope: rg
  params: {
    logAnalyticsName: 'log-qcos-${resourceToken}'
    appInsightsName: 'appi-qcos-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-qcos-${resourceToken}'
    location: location
    tags: tags
    adminApiKey: adminApiKey
  }
}

// The service, and its connection string as a vault secret. Its hub comes after the app
// (webPubSubHub below): the hub's event handler is the app's URL.
module webPubSub 'core/webpubsub.bicep' = {
  name: 'webpubsub'
  scope: rg
  params: {
    name: 'wps-qcos-${resourceToken}'
    location: location
    tags: tags
    sku: webPubSubSku
    units: webPubSubUnits
    keyVaultName: keyVault.outputs.name
  }
}

module roles 'core/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    appInsightsName: monitor.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    webPubSubName: webPubSub.outputs.name
    deployerPrincipalIds: deployers
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  // The identity's roles first, so the first start can read storage and the vault; and the
  // Web PubSub secret, so its Key Vault reference resolves on that start.
  dependsOn: [
    roles
    webPubSub
  ]
  params: {
    name: 'func-qcos-${resourceToken}'
    planName: 'plan-qcos-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    deploymentContainer: deploymentContainer
    appInsightsConnectionString: monitor.outputs.connectionString
    keyVaultName: keyVault.outputs.name
    webPubSubHub: webPubSubHubName
    appSettings: config.appSettings
    vaultSecrets: config.vaultSecrets
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

// The hub, once the app's host name is known: its event handler posts there.
module webPubSubHub 'app/webpubsub-hub.bicep' = {
  name: 'webpubsub-hub'
  scope: rg
  params: {
    webPubSubName: webPubSub.outputs.name
    name: webPubSubHubName
    appHostName: functionApp.outputs.hostName
  }
}

// azd writes these to the environment (.azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_WEBPUBSUB_NAME string = webPubSub.outputs.name
output AZURE_WEBPUBSUB_HOST string = webPubSub.outputs.hostName
output AZURE_WEBPUBSUB_HUB string = webPubSubHub.outputs.name
